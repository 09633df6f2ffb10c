"""Running prompts through the model before they join a decode batch (engine thread only).

`Prefiller.prefill_one` runs one prompt unpadded, exactly as `generate()` does, into the
model's own cache (`PerRowDecodeBatch`). `Prefiller.prefill_group` runs several prompts in ONE
forward pass, the way static batching does, into a cache a `PaddedDecodeBatch` can merge:
  - decoder-only: prompts left-padded to the longest, the attention mask hiding the padding
    and position ids counted per row, so each row sees what it would see alone;
  - encoder-decoder: prompts right-padded for the encoder (its mask hides the padding), then
    one decoder step from the start token for every row.
One forward pass reads the weights once for all prompts: on a CPU that is most of the cost of
a short prompt, so eight arrivals get their first token in little more than one's time.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from hf_runtime.backends.huggingface.kv_cache import GrowableCache


@dataclass
class PrefilledRow:
    """One prompt after an unpadded prefill: its own cache and what decoding it needs next."""

    cache: Cache
    length: int  # tokens in its (self-attention) cache
    encoder_hidden: torch.Tensor | None = None  # [1, S, d] for encoder-decoders
    encoder_mask: torch.Tensor | None = None  # [1, S]


@dataclass
class PrefilledGroup:
    """Several prompts prefilled together: one padded cache, row i is prompt i."""

    cache: Cache  # self-attention layers [n, H, L, D] (an EncoderDecoderCache for seq2seq)
    mask: torch.Tensor  # [n, L] 1 = real token, left padding
    positions: torch.Tensor  # [n] each row's next position id
    encoder_hidden: torch.Tensor | None = None  # [n, S, d], right padding
    encoder_mask: torch.Tensor | None = None  # [n, S]

    def __len__(self) -> int:
        return int(self.mask.shape[0])


@dataclass
class PastColumns:
    """The first `width` columns of a left-padded prefill group, computed before."""

    cache: Cache
    width: int


# Padding a group of prompts may waste this many token slots, or a quarter of its real tokens
# if more, before a prompt starts a group of its own: a second forward pass reads every weight
# again, which costs more than computing a few padded positions.
PADDING_WASTE_TOKENS = 256


def prefill_groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Prompt indices (by length) in groups to prefill together: a group stays within
    `budget` padded tokens (a longer prompt goes alone) and wastes little on padding."""
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        padded = (len(current) + 1) * length  # sorted: this prompt is the group's longest
        waste = padded - real - length
        if current and (padded > budget or waste > max(PADDING_WASTE_TOKENS, (real + length) // 4)):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        groups.append(current)
    return groups


def self_attention_cache(cache: Cache) -> Cache:
    return cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache


class Prefiller:
    """The prefills both batch kinds use; `plain_cache` for caches a padded batch can merge."""

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

    def _new_cache(self) -> Cache | None:
        if not self._plain_cache:
            return None  # the model builds its own (sliding, recurrent, ...) cache
        if self.is_encoder_decoder:
            # Cross-attention is computed once: a plain layer is enough there.
            return EncoderDecoderCache(GrowableCache(), DynamicCache())
        return GrowableCache()

    # ---------------------------------------------------------------- one prompt, unpadded

    def prefill_one(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, PrefilledRow]:
        """One prompt; the logits row for its first new token and its state."""
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
        if self.is_encoder_decoder:
            mask = torch.ones_like(ids)
            logits, cache, hidden = self._seq2seq_first_step(ids, mask)
            return logits[0], PrefilledRow(cache, 1, hidden, mask)
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": True}
        kwargs["past_key_values"] = self._new_cache()
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        return out.logits[0, -1], PrefilledRow(out.past_key_values, ids.shape[1])

    # ---------------------------------------------------------------- several prompts, padded

    def prefill_group(
        self, prompts: Sequence[Sequence[int]], past: PastColumns | None = None
    ) -> tuple[torch.Tensor, PrefilledGroup]:
        """Several prompts in one forward; logits [n, vocab] for their first new tokens.
        `past` (decoder-only): the group's first columns, already computed (a prefix cache
        hit): only the columns after them run through the model."""
        if not prompts:
            raise ValueError("prefill_group() needs at least one prompt")
        if self.is_encoder_decoder:
            return self._prefill_group_seq2seq(prompts)
        longest = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), longest, dtype=torch.long)
        mask = torch.zeros(len(prompts), longest, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, longest - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Each row's tokens get positions 0.. as alone; padding gets 0 (masked anyway).
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": position_ids,
            "use_cache": True,
        }
        if past is not None and past.width > 0:
            # Same layout and positions as without them; the model sees the mask's full width.
            kwargs["past_key_values"] = past.cache
            kwargs["input_ids"] = ids[:, past.width :]
            kwargs["position_ids"] = position_ids[:, past.width :]
        else:
            kwargs["past_key_values"] = self._new_cache()
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=self.device)
        return out.logits[:, -1], PrefilledGroup(out.past_key_values, mask, lengths)

    def _prefill_group_seq2seq(
        self, prompts: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, PrefilledGroup]:
        widest = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), widest, dtype=torch.long)
        encoder_mask = torch.zeros(len(prompts), widest, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
            encoder_mask[row, : len(prompt)] = 1
        ids, encoder_mask = ids.to(self.device), encoder_mask.to(self.device)
        logits, cache, hidden = self._seq2seq_first_step(ids, encoder_mask)
        # The decoder has seen its start token: one real column, next position 1.
        mask = torch.ones(len(prompts), 1, dtype=torch.long, device=self.device)
        positions = torch.ones(len(prompts), dtype=torch.long, device=self.device)
        return logits, PrefilledGroup(cache, mask, positions, hidden, encoder_mask)

    def _seq2seq_first_step(
        self, ids: torch.Tensor, encoder_mask: torch.Tensor
    ) -> tuple[torch.Tensor, Cache, torch.Tensor]:
        encoder_hidden = self.model.get_encoder()(input_ids=ids, attention_mask=encoder_mask)[0]
        start = torch.full(
            (ids.shape[0], 1), self.decoder_start_token_id, dtype=torch.long, device=self.device
        )
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
            attention_mask=encoder_mask,
            decoder_input_ids=start,
            past_key_values=self._new_cache(),
            use_cache=True,
        )
        return out.logits[:, -1], out.past_key_values, encoder_hidden
