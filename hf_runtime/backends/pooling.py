"""Pooling last hidden states into one vector per text: the one formula for each mode.

Both backends pool with this function, so an embedding is the same on either: the huggingface
backend on its padded batch, vLLM's on the per-token states its pooling runner returns (a
torch tensor; vLLM's own pooler would apply its defaults, e.g. CLS for a bare BertModel where
KServe mean-pools). Imports torch: only backends import this module, when a model loads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hf_runtime.backends import POOLING_MODES


def pool_hidden_states(
    hidden: torch.Tensor, mask: torch.Tensor, modes: Sequence[str]
) -> torch.Tensor:
    """[B, L, H] hidden states -> [B, H * len(modes)], pooling over real tokens only.

    Same formulas as sentence-transformers' Pooling module (and KServe's mean pooling), but
    padding-side agnostic: first/last *real* token for cls/lasttoken.
    """
    hidden = hidden.float()
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    parts: list[torch.Tensor] = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[rows, mask.int().argmax(dim=1)])
        elif mode == "mean":
            parts.append((hidden * weights).sum(dim=1) / counts)
        elif mode == "mean_sqrt_len":
            parts.append((hidden * weights).sum(dim=1) / torch.sqrt(counts))
        elif mode == "max":
            parts.append(hidden.masked_fill(weights == 0, -1e9).max(dim=1).values)
        elif mode == "weightedmean":
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device)
            position_weights = positions.to(hidden.dtype).view(1, -1, 1) * weights
            total = position_weights.sum(dim=1).clamp(min=1e-9)
            parts.append((hidden * position_weights).sum(dim=1) / total)
        elif mode == "lasttoken":
            last = hidden.shape[1] - 1 - mask.int().flip(dims=[1]).argmax(dim=1)
            parts.append(hidden[rows, last])
        else:
            raise ValueError(f"unknown pooling mode {mode!r}; known: {', '.join(POOLING_MODES)}")
    return torch.cat(parts, dim=-1)


def pool_token_states(hidden: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """[tokens, H] states of one unpadded text -> [H * len(modes)]."""
    batch = hidden.unsqueeze(0)
    mask = torch.ones(batch.shape[:2], dtype=torch.long, device=batch.device)
    return pool_hidden_states(batch, mask, modes)[0]
