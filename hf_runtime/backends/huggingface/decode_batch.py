"""Decoding several sequences together on a transformers model (engine thread only).

`PaddedDecodeBatch` keeps every running sequence in ONE key/value cache, left-padded to a
common length: a decoding step is one forward pass for the whole batch. Each prompt is
prefilled alone (no padding, exactly what `generate()` computes), then merged in; finished
rows are cut out and all-padding columns trimmed. Padding is invisible to the model because
  - the attention mask hides padded key/value columns,
  - position ids are passed per row (each row's real length), so rotary and learned absolute
    positions are those of the unpadded sequence,
  - relative position biases (T5) depend only on query-key distances, which left padding
    keeps.
Models that cannot promise this (no `position_ids` argument, recurrent or other special cache
layers, encoder-decoders with absolute decoder positions) use `PerRowDecodeBatch`: each row
keeps its own cache and is stepped alone. Slower, but correct for anything `generate()` runs.

Both classes share one interface: `prefill` a prompt, `add` the prefilled row with its first
token, `decode` a step for all rows (logits in row order), `set_next` each row's next token,
`retain` the rows that go on.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from transformers.cache_utils import (
    Cache,
    DynamicCache,
    DynamicLayer,
    DynamicSlidingWindowLayer,
    EncoderDecoderCache,
)
from transformers.modeling_outputs import BaseModelOutput

# Encoder-decoders whose decoder has only relative positions: left padding is invisible.
RELATIVE_POSITION_SEQ2SEQ = frozenset({"t5", "mt5", "umt5", "longt5"})


@dataclass
class PrefilledRow:
    """One prompt after its prefill: its cache and what decoding it needs next."""

    cache: Cache
    length: int  # tokens in its (self-attention) cache
    encoder_hidden: torch.Tensor | None = None  # [1, S, d] for encoder-decoders
    encoder_mask: torch.Tensor | None = None  # [1, S]


class DecodeBatch(Protocol):
    def prefill(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, PrefilledRow]:
        """Run one prompt; return the logits row for its first new token and its state."""

    def add(self, row: PrefilledRow, next_token: int) -> None: ...

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
    # Sliding-window masks are index based, so they survive left padding; anything else
    # (linear attention, recurrent state, chunked layers) keeps per-row caches.
    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)


class _Prefiller:
    """The prefill both batch kinds share: one prompt, no padding, like `generate()`."""

    def __init__(self, model: Any, device: torch.device, *, plain_cache: bool) -> None:
        self.model = model
        self.device = device
        self.is_encoder_decoder = bool(model.config.is_encoder_decoder)
        # Padded batches need plain full-length layers; per-row caches are the model's own.
        self._plain_cache = plain_cache
        params = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in params
        if self.is_encoder_decoder:
            start = model.generation_config.decoder_start_token_id
            if start is None:
                start = model.config.decoder_start_token_id
            if isinstance(start, list):
                start = start[0]
            if start is None:
                raise ValueError("encoder-decoder model has no decoder_start_token_id")
            self.decoder_start_token_id = int(start)

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, PrefilledRow]:
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
        if self.is_encoder_decoder:
            return self._prefill_seq2seq(ids)
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": True}
        kwargs["past_key_values"] = DynamicCache() if self._plain_cache else None
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        return out.logits[0, -1], PrefilledRow(out.past_key_values, ids.shape[1])

    def _prefill_seq2seq(self, ids: torch.Tensor) -> tuple[torch.Tensor, PrefilledRow]:
        mask = torch.ones_like(ids)
        encoder_hidden = self.model.get_encoder()(input_ids=ids, attention_mask=mask)[0]
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache()) if self._plain_cache else None
        start = torch.tensor([[self.decoder_start_token_id]], device=self.device)
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
            attention_mask=mask,
            decoder_input_ids=start,
            past_key_values=cache,
            use_cache=True,
        )
        row = PrefilledRow(out.past_key_values, 1, encoder_hidden, mask)
        return out.logits[0, -1], row


def _pad(tensor: torch.Tensor, amount: int, dim: int, *, left: bool) -> torch.Tensor:
    """`amount` zeros before (left) or after `tensor` along `dim`."""
    if amount == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = amount
    zeros = tensor.new_zeros(shape)
    return torch.cat([zeros, tensor] if left else [tensor, zeros], dim=dim)


def _left_pad(tensor: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    return _pad(tensor, amount, dim, left=True)


def _right_pad(tensor: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    return _pad(tensor, amount, dim, left=False)


def _layers(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


class PaddedDecodeBatch:
    """All rows in one left-padded cache; one forward pass per decoding step."""

    def __init__(self, model: Any, device: torch.device) -> None:
        self._prefiller = _Prefiller(model, device, plain_cache=True)
        self.model = model
        self.device = device
        self.is_encoder_decoder = self._prefiller.is_encoder_decoder
        self.reset()

    def reset(self) -> None:
        # The cache object lives across steps (the model appends to it); it is rebuilt only
        # when rows join or leave.
        self._cache: Cache | None = None
        self._mask: torch.Tensor | None = None  # [B, L] 1 = real token
        self._positions: torch.Tensor | None = None  # [B] next position id of each row
        self._encoder_hidden: torch.Tensor | None = None  # [B, S, d]
        self._encoder_mask: torch.Tensor | None = None  # [B, S]
        self._next: list[int] = []
        self._pending: list[tuple[PrefilledRow, int]] = []

    def __len__(self) -> int:
        return len(self._next) + len(self._pending)

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, PrefilledRow]:
        return self._prefiller.prefill(prompt_ids)

    def add(self, row: PrefilledRow, next_token: int) -> None:
        # Merged at the next decode/retain, so several arrivals cost one copy of the cache.
        self._pending.append((row, next_token))

    def set_next(self, index: int, token_id: int) -> None:
        self._next[index] = token_id

    def decode(self) -> torch.Tensor:
        self._merge_pending()
        if not self._next:
            raise RuntimeError("decode() on an empty batch")
        assert self._mask is not None and self._positions is not None
        batch = len(self._next)
        tokens = torch.tensor(self._next, dtype=torch.long, device=self.device).unsqueeze(1)
        mask = torch.cat([self._mask, self._mask.new_ones(batch, 1)], dim=1)
        if self.is_encoder_decoder:
            out = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=self._encoder_hidden),
                attention_mask=self._encoder_mask,
                decoder_input_ids=tokens,
                decoder_attention_mask=mask,
                past_key_values=self._cache,
                use_cache=True,
            )
        else:
            out = self.model(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=self._positions.unsqueeze(1),
                past_key_values=self._cache,
                use_cache=True,
            )
        self._cache = out.past_key_values
        self._mask = mask
        self._positions = self._positions + 1
        return out.logits[:, -1]

    def retain(self, indices: Sequence[int]) -> None:
        self._merge_pending()
        if len(indices) == len(self._next):
            return
        if not indices:
            self.reset()
            return
        assert self._mask is not None and self._positions is not None
        index = torch.tensor(list(indices), dtype=torch.long, device=self.device)
        mask = self._mask.index_select(0, index)
        # Columns that are padding in every remaining row are dead weight: trim them.
        first = int(torch.nonzero(mask.any(dim=0))[0])
        self._mask = mask[:, first:]
        self_kv = [
            (k.index_select(0, index)[:, :, first:], v.index_select(0, index)[:, :, first:])
            for k, v in self._self_layers()
        ]
        cross_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._positions = self._positions.index_select(0, index)
        self._next = [self._next[i] for i in indices]
        if self.is_encoder_decoder:
            assert self._encoder_mask is not None and self._encoder_hidden is not None
            encoder_mask = self._encoder_mask.index_select(0, index)
            end = int(torch.nonzero(encoder_mask.any(dim=0))[-1]) + 1
            self._encoder_mask = encoder_mask[:, :end]
            self._encoder_hidden = self._encoder_hidden.index_select(0, index)[:, :end]
            cross_kv = [
                (k.index_select(0, index)[:, :, :end], v.index_select(0, index)[:, :, :end])
                for k, v in self._cross_layers()
            ]
        self._cache = self._build_cache(self_kv, cross_kv)

    def _self_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._cache is None:
            return []
        if isinstance(self._cache, EncoderDecoderCache):
            return _layers(self._cache.self_attention_cache)
        return _layers(self._cache)

    def _cross_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self._cache, EncoderDecoderCache):
            return _layers(self._cache.cross_attention_cache)
        return []

    def _build_cache(
        self,
        self_kv: list[tuple[torch.Tensor, torch.Tensor]],
        cross_kv: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> Cache:
        if self.is_encoder_decoder:
            # A filled cross-attention cache marks its layers as computed: the encoder states
            # are not projected again.
            return EncoderDecoderCache(DynamicCache(self_kv), DynamicCache(cross_kv))
        return DynamicCache(self_kv)

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        rows = [row for row, _ in self._pending]
        current = 0 if self._mask is None else self._mask.shape[1]
        length = max(current, *(row.length for row in rows))
        masks = [] if self._mask is None else [_left_pad(self._mask, length - current, 1)]
        positions = [] if self._positions is None else [self._positions]
        layer_parts: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        if self._cache is not None:
            layer_parts.append(
                [(_left_pad(k, length - current, 2), _left_pad(v, length - current, 2))
                 for k, v in self._self_layers()]
            )  # fmt: skip
        for row in rows:
            self_cache = row.cache.self_attention_cache if self.is_encoder_decoder else row.cache
            pad = length - row.length
            layer_parts.append(
                [(_left_pad(k, pad, 2), _left_pad(v, pad, 2)) for k, v in _layers(self_cache)]
            )
            row_mask = torch.ones(1, row.length, dtype=torch.long, device=self.device)
            masks.append(_left_pad(row_mask, pad, 1))
            positions.append(torch.tensor([row.length], dtype=torch.long, device=self.device))
        self_kv = _concat_layers(layer_parts)
        self._mask = torch.cat(masks, dim=0)
        self._positions = torch.cat(positions, dim=0)
        cross_kv = self._merge_encoder_rows(rows) if self.is_encoder_decoder else []
        self._cache = self._build_cache(self_kv, cross_kv)
        self._next.extend(token for _, token in self._pending)
        self._pending = []

    def _merge_encoder_rows(
        self, rows: list[PrefilledRow]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention state is right-padded to the longest encoder input; the encoder
        mask hides the padding (cross-attention has no positions)."""
        width = max(row.encoder_mask.shape[1] for row in rows if row.encoder_mask is not None)
        if self._encoder_mask is not None:
            width = max(width, self._encoder_mask.shape[1])
        hidden_parts, mask_parts, layer_parts = [], [], []
        if self._encoder_mask is not None and self._encoder_hidden is not None:
            extra = width - self._encoder_mask.shape[1]
            hidden_parts.append(_right_pad(self._encoder_hidden, extra, 1))
            mask_parts.append(_right_pad(self._encoder_mask, extra, 1))
            layer_parts.append(
                [
                    (_right_pad(k, extra, 2), _right_pad(v, extra, 2))
                    for k, v in self._cross_layers()
                ]
            )
        for row in rows:
            assert row.encoder_hidden is not None and row.encoder_mask is not None
            extra = width - row.encoder_mask.shape[1]
            hidden_parts.append(_right_pad(row.encoder_hidden, extra, 1))
            mask_parts.append(_right_pad(row.encoder_mask, extra, 1))
            cross = row.cache.cross_attention_cache
            layer_parts.append(
                [(_right_pad(k, extra, 2), _right_pad(v, extra, 2)) for k, v in _layers(cross)]
            )
        self._encoder_hidden = torch.cat(hidden_parts, dim=0)
        self._encoder_mask = torch.cat(mask_parts, dim=0)
        return _concat_layers(layer_parts)


def _concat_layers(
    parts: list[list[tuple[torch.Tensor, torch.Tensor]]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of several row groups, concatenated along the batch."""
    return [
        (torch.cat([p[i][0] for p in parts], dim=0), torch.cat([p[i][1] for p in parts], dim=0))
        for i in range(len(parts[0]))
    ]


class PerRowDecodeBatch:
    """Each row keeps the model's own cache and is stepped alone: the always-correct path."""

    def __init__(self, model: Any, device: torch.device) -> None:
        self._prefiller = _Prefiller(model, device, plain_cache=False)
        self.model = model
        self.device = device
        self.is_encoder_decoder = self._prefiller.is_encoder_decoder
        self.reset()

    def reset(self) -> None:
        self._rows: list[PrefilledRow] = []
        self._next: list[int] = []

    def __len__(self) -> int:
        return len(self._rows)

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, PrefilledRow]:
        return self._prefiller.prefill(prompt_ids)

    def add(self, row: PrefilledRow, next_token: int) -> None:
        self._rows.append(row)
        self._next.append(next_token)

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
    model: Any, device: torch.device, *, padded: bool | None = None
) -> DecodeBatch:
    """The fastest correct batch kind for `model` (`padded` forces a choice, for tests)."""
    if padded is None:
        padded = supports_padded_batching(model)
    return PaddedDecodeBatch(model, device) if padded else PerRowDecodeBatch(model, device)
