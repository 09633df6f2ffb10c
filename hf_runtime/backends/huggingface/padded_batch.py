"""`PaddedDecodeBatch`: every running sequence in ONE key/value cache (engine thread only).

The rows are left-padded to a common length, so a decoding step is one forward pass for the
whole batch. Prompts arrive in groups prefilled together (`Prefiller.prefill_group`) and are
merged in before the next step; finished rows are cut out and all-padding columns trimmed.
Padding is invisible to the model because
  - the attention mask hides padded key/value columns,
  - position ids are passed per row (each row's real length), so rotary and learned absolute
    positions are those of the unpadded sequence,
  - relative position biases (T5) depend only on query-key distances, which left padding
    keeps; the encoder side is right-padded and hidden by the encoder mask.
The cache is made of `GrowableLayer`s (kv_cache.py): a step writes its new column in place
instead of copying the whole cache, as `DynamicCache` (and `generate()`) would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from hf_runtime.backends.huggingface.kv_cache import GrowableCache, GrowableLayer, stack_rows
from hf_runtime.backends.huggingface.prefill import (
    PrefilledGroup,
    Prefiller,
    self_attention_cache,
)
from hf_runtime.backends.huggingface.prefix_cache import PrefixCache, past_cache, reusable_tokens


class PaddedDecodeBatch:
    """All rows in one left-padded cache; one forward pass per decoding step."""

    def __init__(
        self, model: Any, device: torch.device, prefix_cache: PrefixCache | None = None
    ) -> None:
        self._prefiller = Prefiller(model, device, plain_cache=True)
        self.model = model
        self.device = device
        self.is_encoder_decoder = self._prefiller.is_encoder_decoder
        # Decoder-only: a prompt's keys and values depend on its tokens alone.
        self.prefix_cache = None if self.is_encoder_decoder else prefix_cache
        self.reset()

    def reset(self) -> None:
        # The running rows as one group (None when there are none); its cache lives across
        # steps (the model writes into it) and is rebuilt only when rows join or leave.
        self._rows: PrefilledGroup | None = None
        self._next: list[int] = []
        # Prefilled groups waiting to join at the next step: (group, its rows kept, tokens).
        self._pending: list[tuple[PrefilledGroup, list[int], list[int]]] = []

    def __len__(self) -> int:
        return len(self._next) + sum(len(rows) for _, rows, _ in self._pending)

    def cached_length(self, prompt: Sequence[int]) -> int:
        """Tokens of `prompt` the prefix cache holds (what its prefill would skip)."""
        return 0 if self.prefix_cache is None else self.prefix_cache.lookup(prompt).length

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, PrefilledGroup]:
        cache = self.prefix_cache
        if cache is None or not cache.enabled:
            return self._prefiller.prefill_group(prompts)
        prefixes = [cache.lookup(prompt) for prompt in prompts]
        reused = reusable_tokens(prompts, prefixes)
        past = past_cache(prompts, prefixes, reused) if any(reused) else None
        logits, group = self._prefiller.prefill_group(prompts, past)
        layers = _kv(group.cache)
        width = int(group.mask.shape[1])
        for row, (prompt, count) in enumerate(zip(prompts, reused, strict=True)):
            cache.count(len(prompt), count)
            cache.store(prompt, layers, row, width - len(prompt))
        return logits, group

    def add(self, group: PrefilledGroup, rows: Sequence[int], next_tokens: Sequence[int]) -> None:
        # Merged at the next decode/retain, so several groups cost one copy of the cache.
        if rows:
            self._pending.append((group, list(rows), list(next_tokens)))

    def set_next(self, index: int, token_id: int) -> None:
        self._next[index] = token_id

    def decode(self) -> torch.Tensor:
        self._merge_pending()
        rows = self._rows
        if rows is None or not self._next:
            raise RuntimeError("decode() on an empty batch")
        batch = len(self._next)
        tokens = torch.tensor(self._next, dtype=torch.long, device=self.device).unsqueeze(1)
        mask = torch.cat([rows.mask, rows.mask.new_ones(batch, 1)], dim=1)
        if self.is_encoder_decoder:
            out = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=rows.encoder_hidden),
                attention_mask=rows.encoder_mask,
                decoder_input_ids=tokens,
                decoder_attention_mask=mask,
                past_key_values=rows.cache,
                use_cache=True,
            )
        else:
            out = self.model(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=rows.positions.unsqueeze(1),
                past_key_values=rows.cache,
                use_cache=True,
            )
        rows.cache = out.past_key_values
        rows.mask = mask
        rows.positions = rows.positions + 1
        return out.logits[:, -1]

    def retain(self, indices: Sequence[int]) -> None:
        self._merge_pending()
        if len(indices) == len(self._next):
            return
        if not indices or self._rows is None:
            self.reset()
            return
        self._rows = select_rows(self._rows, indices)
        self._next = [self._next[i] for i in indices]

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        groups = [] if self._rows is None else [self._rows]
        for group, rows, _ in self._pending:
            groups.append(group if len(rows) == len(group) else select_rows(group, rows))
        # A lone group (the batch was empty) is adopted as it is: no copy.
        self._rows = groups[0] if len(groups) == 1 else concat_groups(groups)
        self._next.extend(token for _, _, tokens in self._pending for token in tokens)
        self._pending = []


def _kv(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cross(group: PrefilledGroup) -> list[tuple[torch.Tensor, torch.Tensor]]:
    assert isinstance(group.cache, EncoderDecoderCache)
    return _kv(group.cache.cross_attention_cache)


def _build_cache(
    self_layers: list[GrowableLayer], cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None
) -> Cache:
    if cross_kv is None:
        return GrowableCache(self_layers)
    # A filled cross-attention cache marks its layers as computed: the encoder states are not
    # projected again.
    return EncoderDecoderCache(GrowableCache(self_layers), DynamicCache(cross_kv))


def select_rows(group: PrefilledGroup, rows: Sequence[int]) -> PrefilledGroup:
    """The given rows of a group, without the columns that are padding in all of them."""
    index = torch.tensor(list(rows), dtype=torch.long, device=group.mask.device)
    mask = group.mask.index_select(0, index)
    first = int(torch.nonzero(mask.any(dim=0))[0])
    mask = mask[:, first:]
    width = mask.shape[1]
    self_layers = [
        GrowableLayer.from_parts(
            [k[:, :, first:].index_select(0, index)], [v[:, :, first:].index_select(0, index)],
            width,
        )
        for k, v in _kv(self_attention_cache(group.cache))
    ]  # fmt: skip
    selected = PrefilledGroup(_build_cache(self_layers, None), mask, group.positions[index])
    if group.encoder_mask is None or group.encoder_hidden is None:
        return selected
    encoder_mask = group.encoder_mask.index_select(0, index)
    end = int(torch.nonzero(encoder_mask.any(dim=0))[-1]) + 1
    cross_kv = [
        (k.index_select(0, index)[:, :, :end], v.index_select(0, index)[:, :, :end])
        for k, v in _cross(group)
    ]
    selected.cache = _build_cache(self_layers, cross_kv)
    selected.encoder_mask = encoder_mask[:, :end]
    selected.encoder_hidden = group.encoder_hidden.index_select(0, index)[:, :end]
    return selected


def concat_groups(groups: Sequence[PrefilledGroup]) -> PrefilledGroup:
    """Groups stacked in order: self-attention left-padded to the longest, encoder states
    right-padded to the widest (cross-attention has no positions)."""
    length = max(group.mask.shape[1] for group in groups)
    layers = [_kv(self_attention_cache(group.cache)) for group in groups]
    self_layers = [
        GrowableLayer.from_parts(
            [parts[i][0] for parts in layers], [parts[i][1] for parts in layers], length
        )
        for i in range(len(layers[0]))
    ]
    merged = PrefilledGroup(
        _build_cache(self_layers, None),
        stack_rows([group.mask for group in groups], length, dim=1, end=length),
        torch.cat([group.positions for group in groups]),
    )
    if groups[0].encoder_mask is None:
        return merged
    masks = [group.encoder_mask for group in groups if group.encoder_mask is not None]
    hidden = [group.encoder_hidden for group in groups if group.encoder_hidden is not None]
    width = max(mask.shape[1] for mask in masks)
    cross = [_cross(group) for group in groups]
    cross_kv = [
        (
            stack_rows([parts[i][0] for parts in cross], width, dim=2),
            stack_rows([parts[i][1] for parts in cross], width, dim=2),
        )
        for i in range(len(cross[0]))
    ]
    merged.cache = _build_cache(self_layers, cross_kv)
    merged.encoder_mask = stack_rows(masks, width, dim=1)
    merged.encoder_hidden = stack_rows(hidden, width, dim=1)
    return merged
