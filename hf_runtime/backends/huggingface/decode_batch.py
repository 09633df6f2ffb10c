"""Decoding several sequences together on a transformers model (engine thread only).

Two batch kinds share one interface: `prefill` a group of prompts (logits for each one's first
new token), `add` the rows of that group that go on with their first tokens, `decode` a step
for all rows (logits in row order), `set_next` each row's next token, `retain` the rows that
go on.
  - `PaddedDecodeBatch` (padded_batch.py): every row in one left-padded cache, prompts
    prefilled together; one forward pass per step. Used when padding is provably invisible.
  - `PerRowDecodeBatch`: each row keeps the model's own cache and is prefilled and stepped
    alone. Slower, but correct for anything `generate()` runs: models without a
    `position_ids` argument, recurrent or other special cache layers, encoder-decoders with
    absolute decoder positions.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer
from transformers.modeling_outputs import BaseModelOutput

from hf_runtime.backends.huggingface.kv_cache import install_gqa_attention
from hf_runtime.backends.huggingface.padded_batch import PaddedDecodeBatch
from hf_runtime.backends.huggingface.prefill import PrefilledRow, Prefiller
from hf_runtime.backends.huggingface.prefix_cache import PrefixCache, PrefixCacheSettings

logger = logging.getLogger("hf_runtime")

# Encoder-decoders whose decoder has only relative positions: left padding is invisible.
RELATIVE_POSITION_SEQ2SEQ = frozenset({"t5", "mt5", "umt5", "longt5"})


class DecodeBatch(Protocol):
    prefix_cache: PrefixCache | None

    def cached_length(self, prompt: Sequence[int]) -> int:
        """Tokens of `prompt` its prefill would take from the prefix cache."""

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, Any]:
        """Run prompts; logits [n, vocab] for their first new tokens, and their state."""

    def add(self, prefilled: Any, rows: Sequence[int], next_tokens: Sequence[int]) -> None:
        """Rows (indices into the prompts of one `prefill`) that join, with their tokens."""

    def decode(self) -> torch.Tensor:
        """One step for every row; logits [rows, vocab] in the order rows were added."""

    def set_next(self, index: int, token_id: int) -> None: ...

    def retain(self, indices: Sequence[int]) -> None: ...

    def reset(self) -> None: ...

    def __len__(self) -> int: ...


def supports_padded_batching(model: Any) -> bool:
    """True when `PaddedDecodeBatch` gives the same results as decoding each row alone."""
    config = model.config
    if config.is_encoder_decoder:
        return getattr(config, "model_type", "") in RELATIVE_POSITION_SEQ2SEQ
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:  # an unusual config: stay on the path that needs nothing from it
        return False
    # Sliding-window masks are index based, so they survive left padding (the padded batch
    # keeps full-length layers: the mask, not the cache, limits the window); anything else
    # (linear attention, recurrent state, chunked layers) keeps per-row caches.
    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)


class PerRowDecodeBatch:
    """Each row keeps the model's own cache and is stepped alone: the always-correct path."""

    def __init__(self, model: Any, device: torch.device) -> None:
        self._prefiller = Prefiller(model, device, plain_cache=False)
        self.model = model
        self.device = device
        self.is_encoder_decoder = self._prefiller.is_encoder_decoder
        # The model's own caches may be sliding or recurrent: nothing to reuse safely.
        self.prefix_cache: PrefixCache | None = None
        self.reset()

    def cached_length(self, prompt: Sequence[int]) -> int:
        return 0

    def reset(self) -> None:
        self._rows: list[PrefilledRow] = []
        self._next: list[int] = []

    def __len__(self) -> int:
        return len(self._rows)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, list[PrefilledRow]]:
        done = [self._prefiller.prefill_one(prompt) for prompt in prompts]
        return torch.stack([logits for logits, _ in done]), [row for _, row in done]

    def add(
        self, prefilled: list[PrefilledRow], rows: Sequence[int], next_tokens: Sequence[int]
    ) -> None:
        for index, token in zip(rows, next_tokens, strict=True):
            self._rows.append(prefilled[index])
            self._next.append(token)

    def set_next(self, index: int, token_id: int) -> None:
        self._next[index] = token_id

    def decode(self) -> torch.Tensor:
        if not self._rows:
            raise RuntimeError("decode() on an empty batch")
        logits = []
        for row, token in zip(self._rows, self._next, strict=True):
            tokens = torch.tensor([[token]], dtype=torch.long, device=self.device)
            if self.is_encoder_decoder:
                out = self.model(
                    encoder_outputs=BaseModelOutput(last_hidden_state=row.encoder_hidden),
                    attention_mask=row.encoder_mask,
                    decoder_input_ids=tokens,
                    past_key_values=row.cache,
                    use_cache=True,
                )
            else:
                out = self.model(input_ids=tokens, past_key_values=row.cache, use_cache=True)
            row.cache = out.past_key_values
            row.length += 1
            logits.append(out.logits[0, -1])
        return torch.stack(logits)

    def retain(self, indices: Sequence[int]) -> None:
        self._rows = [self._rows[i] for i in indices]
        self._next = [self._next[i] for i in indices]


def make_decode_batch(
    model: Any,
    device: torch.device,
    *,
    padded: bool | None = None,
    prefix_cache: PrefixCacheSettings | None = None,
) -> DecodeBatch:
    """The fastest correct batch kind for `model` (`padded` forces a choice, for tests),
    with a prefix cache where `prefix_cache` asks for one and the batch kind can use it."""
    if padded is None:
        padded = supports_padded_batching(model)
    if not padded:
        if prefix_cache is not None:
            logger.info("prefix cache off: this model decodes each sequence on its own cache")
        return PerRowDecodeBatch(model, device)
    if not model.config.is_encoder_decoder and install_gqa_attention(model, device):
        logger.info("grouped-query attention without repeated key/value heads (CPU SDPA)")
    if prefix_cache is not None and model.config.is_encoder_decoder:
        logger.info("prefix cache off: encoder-decoder prompts go to the encoder")
    cache = PrefixCache(prefix_cache) if prefix_cache is not None else None
    return PaddedDecodeBatch(model, device, cache)
