"""Reusing the key/value cache of a prompt prefix seen before (engine thread only).

Agents and chat apps resend the same long system prompt and tool definitions with every
request; computing their keys and values once and copying them afterwards turns most of a
prefill into a memory copy. The model follows vLLM's automatic prefix caching:
  - prompts are cut into blocks of `block_size` tokens; a block is known by its tokens and
    the block before it, so a block matches only after the same whole prefix. The key is
    (the parent block's serial number, the block's tokens): exact, no hash collisions;
  - a lookup walks a prompt's blocks from the first and stops at the first unknown one: the
    longest cached prefix, in whole blocks, always leaving the prompt's last token to compute
    (its logits give the first new token);
  - memory is bounded in bytes; the least recently used block goes first. A lookup or store
    touches its blocks deepest first, so a block is always more recent than the blocks after
    it: eviction takes the tails of prefixes, never a block whose children stay.
A block holds its own copy of every layer's keys and values ([layers, 2, heads, block, dim]),
cloned from a prefill's cache; a hit copies blocks into a new batch cache, so decoding never
writes into what is cached. Only caches whose layers all have the same key/value shape
(full attention, uniform heads) are stored; anything else turns the cache off for the model.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from hf_runtime.backends.huggingface.kv_cache import GrowableCache, GrowableLayer, capacity_for
from hf_runtime.backends.huggingface.prefill import PastColumns

logger = logging.getLogger("hf_runtime")

ROOT = 0  # the parent serial number of a prompt's first block


@dataclass(frozen=True)
class PrefixCacheSettings:
    """What the engine is given: the bound and the block size (see GenerationConfig)."""

    max_bytes: int
    block_size: int


@dataclass(eq=False)
class _Block:
    serial: int
    kv: torch.Tensor  # [layers, 2, heads, block_size, head_dim], owned, never written
    key: tuple[int, tuple[int, ...]]

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


@dataclass
class CachedPrefix:
    """The cached blocks at the start of one prompt (held: eviction cannot free them)."""

    blocks: list[_Block] = field(default_factory=list)
    block_size: int = 1

    @property
    def length(self) -> int:
        return len(self.blocks) * self.block_size

    def copy_into(self, out: torch.Tensor, tokens: int) -> None:
        """The first `tokens` cached columns into `out` [layers, 2, heads, tokens, dim]."""
        size = self.block_size
        for index, block in enumerate(self.blocks):
            start = index * size
            if start >= tokens:
                break
            width = min(size, tokens - start)
            out[:, :, :, start : start + width].copy_(block.kv[:, :, :, :width])


class PrefixCache:
    """Cached key/value blocks of prompt prefixes, LRU within `max_bytes`."""

    def __init__(self, settings: PrefixCacheSettings) -> None:
        if settings.block_size < 1 or settings.max_bytes < 1:
            raise ValueError("prefix cache: block_size and max_bytes must be positive")
        self.block_size = settings.block_size
        self.max_bytes = settings.max_bytes
        self._blocks: OrderedDict[tuple[int, tuple[int, ...]], _Block] = OrderedDict()
        self._serials = itertools.count(ROOT + 1)
        self._bytes = 0
        self.enabled = True
        # Counters for /metrics (prompt tokens looked up, tokens taken from the cache).
        self.queried_tokens = 0
        self.hit_tokens = 0
        self.evicted_blocks = 0

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, int]:
        return {
            "prefix_cache_queries": self.queried_tokens,
            "prefix_cache_hits": self.hit_tokens,
            "prefix_cache_blocks": len(self._blocks),
            "prefix_cache_bytes": self._bytes,
            "prefix_cache_evicted_blocks": self.evicted_blocks,
        }

    def lookup(self, prompt: Sequence[int]) -> CachedPrefix:
        """The longest cached prefix of `prompt` (whole blocks, its last token left out);
        its blocks become the most recently used. Counts nothing: see `count`."""
        found = CachedPrefix(block_size=self.block_size)
        if not self.enabled:
            return found
        size, parent = self.block_size, ROOT
        for start in range(0, len(prompt) - 1 - size + 1, size):
            block = self._blocks.get((parent, tuple(prompt[start : start + size])))
            if block is None:
                break
            found.blocks.append(block)
            parent = block.serial
        self._touch(found.blocks)
        return found

    def count(self, prompt_tokens: int, reused_tokens: int) -> None:
        """One prefill: its prompt's tokens, and how many of them came from the cache."""
        self.queried_tokens += prompt_tokens
        self.hit_tokens += reused_tokens

    def store(
        self,
        prompt: Sequence[int],
        layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
        row: int,
        offset: int,
    ) -> None:
        """Cache the whole blocks of `prompt` not cached yet. Its keys and values are row `row`
        of each layer's (keys, values) [batch, heads, columns, dim], token 0 at column
        `offset`; each new block is copied out of them."""
        if not self.enabled or len(prompt) < self.block_size:
            return
        shape = layers[0][0].shape[1:2] + layers[0][0].shape[3:]
        if any(x.shape[1:2] + x.shape[3:] != shape for pair in layers for x in pair):
            self.disable("its layers' keys and values differ in shape")
            return
        size, parent = self.block_size, ROOT
        keys = layers[0][0]
        block_bytes = 2 * len(layers) * keys.shape[1] * size * keys.shape[3] * keys.element_size()
        # No more blocks than the bound holds: a huge prompt is never copied only to be evicted.
        blocks = min(len(prompt) // size, self.max_bytes // block_bytes)
        chain: list[_Block] = []
        for start in range(0, blocks * size, size):
            key = (parent, tuple(prompt[start : start + size]))
            block = self._blocks.get(key)
            if block is None:
                columns = slice(offset + start, offset + start + size)
                kv = torch.stack([x[row, :, columns] for pair in layers for x in pair])
                block = _Block(next(self._serials), kv.unflatten(0, (len(layers), 2)), key)
                self._blocks[key] = block
                self._bytes += block.nbytes
            chain.append(block)
            parent = block.serial
        self._touch(chain)
        self._evict()

    def clear(self) -> None:
        self._blocks.clear()
        self._bytes = 0

    def disable(self, reason: str) -> None:
        if self.enabled:
            logger.info("prefix cache off for this model: %s", reason)
        self.enabled = False
        self.clear()

    def _touch(self, chain: Sequence[_Block]) -> None:
        for block in reversed(chain):  # deepest first: the first block ends up most recent
            self._blocks.move_to_end(block.key)

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._blocks:
            _, block = self._blocks.popitem(last=False)
            self._bytes -= block.nbytes
            self.evicted_blocks += 1


def reusable_tokens(
    prompts: Sequence[Sequence[int]], prefixes: Sequence[CachedPrefix]
) -> list[int]:
    """Cached tokens each prompt of one prefill group takes. The group computes the same
    number of columns for every row (the most any row has left), so a row with a longer
    cached prefix than that recomputes the part of it that falls in those columns: the group
    keeps the plain left-padded layout, and token distances stay as without the cache."""
    compute = max(len(p) - prefix.length for p, prefix in zip(prompts, prefixes, strict=True))
    return [max(0, len(p) - compute) for p in prompts]


def past_cache(
    prompts: Sequence[Sequence[int]], prefixes: Sequence[CachedPrefix], reused: Sequence[int]
) -> PastColumns:
    """The left-padded cache of a group's reused columns (its width is the column where the
    computed part starts); room for the whole group is allocated at once."""
    longest = max(len(p) for p in prompts)
    width = longest - max(len(p) - r for p, r in zip(prompts, reused, strict=True))
    sample = next(prefix.blocks[0].kv for prefix, r in zip(prefixes, reused, strict=True) if r)
    layers, _, heads, _, dim = sample.shape
    buffer = sample.new_empty(layers, 2, len(prompts), heads, capacity_for(longest), dim)
    for row, (prefix, count) in enumerate(zip(prefixes, reused, strict=True)):
        buffer[:, :, row, :, : width - count].zero_()  # padding: masked, but must not be NaN
        if count:
            prefix.copy_into(buffer[:, :, row, :, width - count : width], count)
    cache = GrowableCache(
        [GrowableLayer.from_buffers(buffer[i, 0], buffer[i, 1], width) for i in range(layers)]
    )
    return PastColumns(cache, width)
