"""The key/value cache of a padded decode batch, and the attention that reads it.

`GrowableLayer` replaces transformers' `DynamicLayer`, whose `update` concatenates: every
decoding step copies every layer's whole cache (what `generate()` does too). It keeps keys and
values in a buffer with spare room along the sequence, writes each step's new column in place,
and hands the model views of the filled part; the buffer is reallocated only when full (a
quarter more each time). Rows joining or leaving build new buffers (`from_rows`).

`install_gqa_attention`: transformers repeats the key/value heads of a grouped-query model
(`repeat_kv`, a copy of the cache 3x its size for SmolLM2) whenever an attention mask is
passed, i.e. on every step of a padded batch, because CUDA's SDPA would fall back to its math
kernel. On CPU, `scaled_dot_product_attention(enable_gqa=True)` takes the mask and the
unrepeated heads with the same results (checked in tests/backends/huggingface).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

logger = logging.getLogger("hf_runtime")

GQA_ATTENTION = "hf_runtime_sdpa_gqa"
_MIN_SPARE = 32  # columns of room a fresh buffer gets past what it holds


def capacity_for(length: int) -> int:
    return length + max(_MIN_SPARE, length // 4)


class GrowableLayer(DynamicLayer):
    """A full-attention layer whose tensors are views of a buffer with room to grow."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, added = self._length, key_states.shape[-2]
        if self._key_buffer is None or start + added > self._key_buffer.shape[-2]:
            self._grow(key_states, value_states, start + added)
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, start : start + added].copy_(key_states)
        self._value_buffer[:, :, start : start + added].copy_(value_states)
        self._set_length(start + added)
        return self.keys, self.values

    def _grow(self, key_like: torch.Tensor, value_like: torch.Tensor, needed: int) -> None:
        batch, heads, _, dim = key_like.shape
        capacity = capacity_for(needed)
        keys = key_like.new_empty(batch, heads, capacity, dim)
        values = value_like.new_empty(batch, heads, capacity, value_like.shape[-1])
        if self._key_buffer is not None and self._value_buffer is not None:
            keys[:, :, : self._length].copy_(self._key_buffer[:, :, : self._length])
            values[:, :, : self._length].copy_(self._value_buffer[:, :, : self._length])
        self._key_buffer, self._value_buffer = keys, values

    def _set_length(self, length: int) -> None:
        assert self._key_buffer is not None and self._value_buffer is not None
        self._length = length
        self.keys = self._key_buffer[:, :, :length]
        self.values = self._value_buffer[:, :, :length]

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        self._length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("padded decode batches never crop their cache")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("padded decode batches never repeat rows")

    @classmethod
    def from_parts(
        cls, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], length: int
    ) -> GrowableLayer:
        """The rows of every part, in order, `length` columns each; a shorter part is left
        padded with zeros (the attention mask hides them)."""
        layer = cls()
        layer.lazy_initialization(keys[0], values[0])
        capacity = capacity_for(length)
        layer._key_buffer = stack_rows(keys, capacity, dim=2, end=length)
        layer._value_buffer = stack_rows(values, capacity, dim=2, end=length)
        layer._set_length(length)
        return layer

    @classmethod
    def from_buffers(cls, keys: torch.Tensor, values: torch.Tensor, length: int) -> GrowableLayer:
        """A layer over buffers already holding `length` filled columns (adopted, not
        copied); their further columns are the room it grows into."""
        layer = cls()
        layer.lazy_initialization(keys, values)
        layer._key_buffer, layer._value_buffer = keys, values
        layer._set_length(length)
        return layer


def stack_rows(
    parts: Sequence[torch.Tensor], width: int, *, dim: int, end: int | None = None
) -> torch.Tensor:
    """`parts` concatenated along dim 0, each zero-padded along `dim` to `width`: placed to
    end at column `end` (left padding), or from column 0 when `end` is None (right padding)."""
    shape = list(parts[0].shape)
    shape[0] = sum(part.shape[0] for part in parts)
    shape[dim] = width
    out = parts[0].new_zeros(shape)
    row = 0
    for part in parts:
        count, size = part.shape[0], part.shape[dim]
        start = 0 if end is None else end - size
        out.narrow(0, row, count).narrow(dim, start, size).copy_(part)
        row += count
    return out


class GrowableCache(DynamicCache):
    """A `DynamicCache` of `GrowableLayer`s (created lazily by the model's first forward)."""

    def __init__(self, layers: list[GrowableLayer] | None = None) -> None:
        super().__init__()
        self.layer_class_to_replicate = GrowableLayer
        if layers:
            self.layers = list(layers)
            self.layer_class_to_replicate = None


def _gqa_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    plain = kwargs.get("position_bias") is None and kwargs.get("s_aux") is None
    if attention_mask is None or groups <= 1 or not plain or module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=kwargs.get("scaling"), enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


def install_gqa_attention(model: Any, device: torch.device) -> bool:
    """Make a CPU grouped-query model attend without repeating its key/value heads (see the
    module docstring). Only models on plain SDPA change; True when this one did."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if device.type != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not heads or not kv_heads or kv_heads >= heads:
        return False
    AttentionInterface.register(GQA_ATTENTION, _gqa_sdpa)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)
    try:
        model.set_attn_implementation(GQA_ATTENTION)
    except (ValueError, TypeError, AttributeError) as exc:  # an unusual model: leave it as is
        logger.info("grouped-query attention left to transformers: %s", exc)
        return False
    return config._attn_implementation == GQA_ATTENTION
