"""The prefix cache: a prompt that starts like one seen before prefills only its rest, with
the same greedy output as without the cache (and as `generate()`), alone, in a burst of mixed
hits and misses, under eviction, and with seeded sampling; plus the block store itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
from hf_runtime.backends.huggingface.prefix_cache import PrefixCache, PrefixCacheSettings
from hf_runtime.observability.metrics import ModelStatsCollector, render
from tests.backends.huggingface.test_batched_prefill import arrive_together, llama  # noqa: F401
from tests.backends.huggingface.test_generation_engine import (
    Loaded,
    Output,
    _load,
    generate,
    make_engine,
    run,
)

BLOCK = 8
SYSTEM = "The user asks a question and the assistant gives a short, helpful answer. " * 2
QUESTIONS = ["The capital of France is", "Hello world!", "x y z", "I love this movie, it is"]


def cache_settings(max_bytes: int = 1 << 24) -> PrefixCacheSettings:
    return PrefixCacheSettings(max_bytes=max_bytes, block_size=BLOCK)


@pytest.fixture(scope="module")
def gpt2(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["gpt2-chat"], seq2seq=False)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request: pytest.FixtureRequest) -> Loaded:
    """Learned absolute positions (gpt2) and rotary grouped-query attention (llama)."""
    loaded: Loaded = request.getfixturevalue(request.param)
    return loaded


def engine_for(loaded: Loaded, **kwargs: Any) -> HFGenerationEngine:
    return make_engine(loaded, max_model_len=128, **kwargs)


@pytest.fixture
def cached(model: Loaded) -> Iterator[HFGenerationEngine]:
    engine = engine_for(model, prefix_cache=cache_settings())
    assert engine.prefix_cache is not None
    yield engine
    engine.close()


def prompts_for(loaded: Loaded) -> list[list[int]]:
    system = loaded.ids(SYSTEM)
    return [system + loaded.ids(" " + question) for question in QUESTIONS]


def greedy(engine: HFGenerationEngine, prompt: list[int], n: int = 8) -> list[int]:
    out: Output = run(generate(engine, prompt, max_tokens=n, temperature=0))
    return out.token_ids


def test_hits_prefill_only_the_rest_with_the_greedy_output_of_no_cache(
    model: Loaded, cached: HFGenerationEngine
) -> None:
    prompts = prompts_for(model)
    first = greedy(cached, prompts[0])
    assert cached.stats()["prefix_cache_hits"] == 0
    later = [greedy(cached, prompt) for prompt in prompts]
    stats = cached.stats()
    shared = len(model.ids(SYSTEM)) // BLOCK * BLOCK
    assert stats["prefix_cache_hits"] >= shared * len(prompts)  # every one reused the system
    assert stats["prefix_cache_queries"] == sum(map(len, prompts)) + len(prompts[0])
    assert later[0] == first
    assert later == [model.reference(prompt, 8) for prompt in prompts]  # generate()
    plain = engine_for(model)
    try:
        assert plain.prefix_cache is None and "prefix_cache_hits" not in plain.stats()
        assert later == [greedy(plain, prompt) for prompt in prompts]
    finally:
        plain.close()


def test_a_burst_of_hits_and_misses_decodes_as_each_alone(
    model: Loaded, cached: HFGenerationEngine
) -> None:
    prompts = prompts_for(model)
    greedy(cached, prompts[0])  # the system prompt is cached now
    misses = [model.ids(text) for text in ("Paris is a city", "The quick brown fox jumps over")]
    burst = [*prompts, *misses, prompts[1][:-2]]
    lengths = [6, 9, 4, 12, 7, 10, 5]
    jobs = [
        generate(cached, prompt, f"r{i}", max_tokens=n, temperature=0)
        for i, (prompt, n) in enumerate(zip(burst, lengths, strict=True))
    ]
    before = cached.stats()["prefix_cache_hits"]
    outputs: list[Output] = run(arrive_together(cached, jobs))
    assert cached.stats()["prefix_cache_hits"] > before
    for prompt, n, out in zip(burst, lengths, outputs, strict=True):
        assert out.token_ids == model.reference(prompt, n)


def test_cached_blocks_are_never_written_by_decoding(gpt2: Loaded) -> None:
    engine = engine_for(gpt2, prefix_cache=cache_settings())
    try:
        prompts = prompts_for(gpt2)
        greedy(engine, prompts[0])
        cache = engine.prefix_cache
        assert cache is not None
        snapshot = [(block, block.kv.clone()) for block in cache._blocks.values()]
        for prompt in prompts:  # hits, each decoding on a copy of the cached blocks
            greedy(engine, prompt, 12)
        assert cache.stats()["prefix_cache_evicted_blocks"] == 0
        assert all(torch.equal(block.kv, before) for block, before in snapshot)
    finally:
        engine.close()


def test_eviction_keeps_the_bound_and_the_output(gpt2: Loaded) -> None:
    probe = engine_for(gpt2, prefix_cache=cache_settings())
    try:
        greedy(probe, prompts_for(gpt2)[0], 1)
        cache = probe.prefix_cache
        assert cache is not None
        block_bytes = cache.bytes // len(cache)
    finally:
        probe.close()
    bound = 3 * block_bytes  # room for 3 blocks: less than one prompt's
    engine = engine_for(gpt2, prefix_cache=cache_settings(bound))
    try:
        # Different first blocks: each prompt's blocks push the one before out; each is sent
        # twice in a row, the second time a hit.
        prompts = [gpt2.ids(question + " " + SYSTEM) for question in QUESTIONS]
        for prompt in (p for p in prompts for _ in range(2)):
            assert greedy(engine, prompt) == gpt2.reference(prompt, 8)
            stats = engine.stats()
            assert stats["prefix_cache_bytes"] <= bound and stats["prefix_cache_blocks"] <= 3
        stats = engine.stats()
        assert stats["prefix_cache_evicted_blocks"] >= 3 * (len(prompts) - 1)
        assert stats["prefix_cache_hits"] == 3 * BLOCK * len(prompts)
    finally:
        engine.close()


def test_seeded_sampling_is_the_same_with_and_without_the_cache(gpt2: Loaded) -> None:
    params = {"max_tokens": 10, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    prompts = prompts_for(gpt2)
    results = []
    for settings in (cache_settings(), None):
        engine = engine_for(gpt2, prefix_cache=settings)
        try:
            outs = [run(generate(engine, p, **params)).token_ids for p in prompts + prompts]
        finally:
            engine.close()
        results.append(outs)
    assert results[0] == results[1]


def test_encoder_decoders_and_per_row_batches_have_none(
    gpt2: Loaded, tiny_models: dict[str, Path]
) -> None:
    t5 = _load(tiny_models["t5"], seq2seq=True)
    for loaded, padded in ((t5, None), (gpt2, False)):
        engine = engine_for(loaded, padded_batching=padded, prefix_cache=cache_settings())
        try:
            assert engine.prefix_cache is None
            assert "prefix_cache_queries" not in engine.stats()
        finally:
            engine.close()


def test_the_hit_rate_reaches_metrics(gpt2: Loaded) -> None:
    engine = engine_for(gpt2, prefix_cache=cache_settings())
    try:
        prompt = prompts_for(gpt2)[0]
        greedy(engine, prompt, 1)
        greedy(engine, prompt, 1)
        stats = engine.stats()
        text = render([ModelStatsCollector(lambda: [("m", "huggingface", stats)])])
    finally:
        engine.close()
    rate = stats["prefix_cache_hits"] / stats["prefix_cache_queries"]
    assert 0.4 < rate < 0.5  # the second of two equal prompts, all but its last block
    labels = '{backend="huggingface",model="m"}'
    assert f"hf_runtime_prefix_cache_hit_rate{labels} {rate}" in text
    assert f"hf_runtime_prefix_cache_hits_total{labels} {float(stats['prefix_cache_hits'])}" in text
    assert f"hf_runtime_prefix_cache_queries_total{labels}" in text
    assert f"hf_runtime_prefix_cache_bytes{labels}" in text


# ---------------------------------------------------------------------- the block store


def _kv(tokens: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) [1, heads, tokens, dim] whose entries name their token."""
    column = torch.arange(tokens, dtype=torch.float32).view(1, 1, tokens, 1)
    return [
        (column.expand(1, 2, tokens, 4) + i, -column.expand(1, 2, tokens, 4)) for i in range(layers)
    ]


def test_longest_prefix_in_whole_blocks_and_never_the_last_token() -> None:
    cache = PrefixCache(PrefixCacheSettings(max_bytes=1 << 20, block_size=4))
    prompt = list(range(10))
    cache.store(prompt, _kv(10), 0, 0)
    assert len(cache) == 2  # 8 tokens in whole blocks; the last 2 stay out
    assert cache.lookup(prompt).length == 8
    assert cache.lookup(prompt[:9]).length == 8
    assert cache.lookup(prompt[:8]).length == 4  # its last token is computed
    assert cache.lookup([0, 1, 2, 9, 4, 5, 6, 7, 8]).length == 0  # differs in the first block
    assert cache.lookup([*range(4), 9, 9, 9, 9, 9]).length == 4  # same first block only
    out = torch.zeros(2, 2, 2, 6, 4)
    cache.lookup(prompt).copy_into(out, 6)
    assert out[1, 0, 0, :, 0].tolist() == [1, 2, 3, 4, 5, 6]  # layer 1's keys, tokens 0..5
    assert out[0, 1, 0, :, 0].tolist() == [0, -1, -2, -3, -4, -5]


def test_lru_eviction_takes_prefix_tails_first() -> None:
    block_bytes = 2 * 2 * 2 * 4 * 4 * 4  # layers x (k, v) x heads x block x dim x float32
    cache = PrefixCache(PrefixCacheSettings(max_bytes=3 * block_bytes, block_size=4))
    a, b = list(range(13)), [100 + t for t in range(13)]
    cache.store(a, _kv(13), 0, 0)
    assert len(cache) == 3 and cache.bytes == 3 * block_bytes
    cache.store(b, _kv(13), 0, 0)  # b's 3 blocks push a's out, a's last block first
    assert (len(cache), cache.evicted_blocks) == (3, 3)
    assert cache.lookup(a).length == 0 and cache.lookup(b).length == 12
    cache.lookup(b)
    cache.store(a[:9], _kv(9), 0, 0)  # a's 2 blocks: b keeps its first block only
    assert cache.lookup(a).length == 8 and cache.lookup(b).length == 4
    evicted = cache.evicted_blocks
    cache.store([200 + t for t in range(41)], _kv(41), 0, 0)  # 10 blocks: the first 3 fit
    assert len(cache) == 3 and cache.evicted_blocks == evicted + 3  # 7 never copied
    assert cache.lookup([200 + t for t in range(41)]).length == 12


@pytest.mark.slow
def test_smollm2_agent_chats_with_and_without_the_cache(smollm2_dir: Path) -> None:
    """A system prompt of tool definitions shared by chats arriving together, and chats with
    the template's default system prompt: the same greedy tokens with the cache (hits and
    misses in one burst) as without it."""
    loaded = _load(smollm2_dir, seq2seq=False)
    tools = "You can call: " + " ".join(
        f"get_{w}(city) returns the {w} of a city." for w in ("weather", "time", "mayor") * 4
    )
    questions = ["What is the capital of France?", "Count to five.", "Who wrote Hamlet?"]
    chats = [
        [{"role": "system", "content": tools}, {"role": "user", "content": q}] for q in questions
    ] + [[{"role": "user", "content": q}] for q in questions]
    prompts = [
        loaded.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for chat in chats
    ]

    async def burst(engine: HFGenerationEngine) -> list[list[int]]:
        outs = await asyncio.gather(
            *(generate(engine, p, f"c{i}", max_tokens=12, temperature=0)
              for i, p in enumerate(prompts))
        )  # fmt: skip
        return [out.token_ids for out in outs]

    results = []
    for settings in (None, PrefixCacheSettings(max_bytes=64 << 20, block_size=16)):
        engine = make_engine(loaded, max_model_len=2048, prefix_cache=settings)
        try:
            greedy(engine, prompts[0], 1)  # the tool prompt is cached (with the cache)
            results.append(run(burst(engine)))
            if settings is not None:
                assert engine.stats()["prefix_cache_hits"] > 0
        finally:
            engine.close()
    assert results[0] == results[1]
