"""Pooling last hidden states into one vector per text: the one formula for each mode.

Both backends pool with this function, so an embedding is the same on either: the huggingface
backend on its padded batch, vLLM's on the per-token states its pooling runner returns (a
torch tensor; vLLM's own pooler would apply its defaults, e.g. CLS for a bare BertModel where
KServe mean-pools). Imports torch: only backends import this module, when a model loads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hf_runtime.backends import POOLING_MODES, SparsePooling


def pool_hidden_states(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    modes: Sequence[str],
    prompt_lengths: Sequence[int] | None = None,
) -> torch.Tensor:
    """[B, L, H] hidden states -> [B, H * len(modes)], pooling over real tokens only.

    sentence-transformers' Pooling formulas (mean is KServe's mean pooling), padding-side
    agnostic: cls/lasttoken take the first/last *real* token, weightedmean's position weights
    start at 1 on the first real token. `prompt_lengths` (per row): leading real tokens left
    out of the pooling (Pooling's `include_prompt: false`); weightedmean keeps the remaining
    tokens' weights, cls takes the first token after the prompt, as sentence-transformers does.
    """
    hidden = hidden.float()
    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    first_real = mask.int().argmax(dim=1, keepdim=True)  # the left padding's width
    if prompt_lengths is not None and any(prompt_lengths):
        skip = torch.tensor(list(prompt_lengths), device=hidden.device).unsqueeze(1)
        mask = mask * (positions >= first_real + skip).to(mask.dtype)
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
            order = (positions + 1 - first_real).to(hidden.dtype).unsqueeze(-1)
            position_weights = order * weights
            total = position_weights.sum(dim=1).clamp(min=1e-9)
            parts.append((hidden * position_weights).sum(dim=1) / total)
        elif mode == "lasttoken":
            last = hidden.shape[1] - 1 - mask.int().flip(dims=[1]).argmax(dim=1)
            parts.append(hidden[rows, last])
        else:
            raise ValueError(f"unknown pooling mode {mode!r}; known: {', '.join(POOLING_MODES)}")
    return torch.cat(parts, dim=-1)


def pool_token_states(
    hidden: torch.Tensor, modes: Sequence[str], prompt_length: int = 0
) -> torch.Tensor:
    """[tokens, H] states of one unpadded text -> [H * len(modes)]."""
    batch = hidden.unsqueeze(0)
    mask = torch.ones(batch.shape[:2], dtype=torch.long, device=batch.device)
    return pool_hidden_states(batch, mask, modes, [prompt_length])[0]


def pool_vocabulary_logits(
    logits: torch.Tensor, mask: torch.Tensor, pooling: SparsePooling
) -> torch.Tensor:
    """[B, L, V] masked-LM logits -> [B, V] SPLADE vectors (sentence-transformers'
    SpladePooling): log1p(relu(logits)) (twice log1p for `log1p_relu`), max or sum over the
    real tokens. Works in place on `logits` (the batch's own, which nobody reads after): a
    [B, L, V] copy is the largest tensor of the pass. Padded positions give 0, which neither
    the max nor the sum of non-negative values sees."""
    values = logits.float() if logits.dtype != torch.float32 else logits
    values.mul_(mask.to(values.dtype).unsqueeze(-1)).relu_().log1p_()
    if pooling.activation == "log1p_relu":
        values.log1p_()
    if pooling.strategy == "sum":
        return values.sum(dim=1)
    return values.amax(dim=1)
