"""Prompts that arrive together are prefilled in one padded forward pass, yet every sequence
gets exactly what it gets alone (and what `generate()` gives): on a rotary grouped-query model
(tiny llama), a learned-absolute-position model (tiny gpt2) and an encoder-decoder (tiny t5).
Plus the pieces: prefill grouping, the growable cache, grouped-query attention, delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hf_runtime.backends.huggingface.delivery import Outbox
from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
from hf_runtime.backends.huggingface.kv_cache import GQA_ATTENTION, GrowableLayer
from hf_runtime.backends.huggingface.prefill import PADDING_WASTE_TOKENS, prefill_groups
from hf_runtime.errors import HFRuntimeError
from tests.backends.huggingface.test_generation_engine import (
    PROMPTS,
    Loaded,
    Output,
    _load,
    generate,
    make_engine,
    run,
    wait_for,
)


@pytest.fixture(scope="module")
def llama(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """A tiny Llama (rotary positions, 4 query heads sharing 2 key/value heads) on the tiny
    gpt2 tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2-chat"])
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return _load(out, seq2seq=False)


@pytest.fixture(scope="module")
def gpt2(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["gpt2-chat"], seq2seq=False)


@pytest.fixture(scope="module")
def t5(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["t5"], seq2seq=True)


@pytest.fixture(scope="module", params=["llama", "gpt2", "t5"])
def padded(request: pytest.FixtureRequest) -> Iterator[tuple[Loaded, HFGenerationEngine]]:
    loaded = request.getfixturevalue(request.param)
    engine = make_engine(loaded)  # the batch kind the engine picks for the model itself
    assert engine.batch_kind == "PaddedDecodeBatch"
    yield loaded, engine
    engine.close()


def record_prefills(engine: HFGenerationEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of prompts in each prefill pass from now on."""
    sizes: list[int] = []
    real = engine._batch.prefill

    def spy(prompts: Any) -> Any:
        sizes.append(len(prompts))
        return real(prompts)

    monkeypatch.setattr(engine._batch, "prefill", spy)
    return sizes


async def arrive_together(engine: HFGenerationEngine, jobs: list[Coroutine[Any, Any, Any]]) -> Any:
    """Queue every job while the engine thread cannot take from the queue, so that ONE
    admission takes them all (the lock is re-entrant: generate() takes it on this thread)."""
    with engine._wakeup:
        tasks = [asyncio.create_task(job) for job in jobs]
        for _ in range(1000):
            if engine.num_waiting == len(jobs):
                break
            await asyncio.sleep(0)
        assert engine.num_waiting == len(jobs)
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_prompts_of_different_lengths_prefilled_together_equal_their_lone_runs(
    padded: tuple[Loaded, HFGenerationEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded, engine = padded
    prompts = [loaded.ids(text) for text in PROMPTS]
    assert len({len(p) for p in prompts}) >= 4  # really padded
    lengths = [6, 12, 9, 12, 3, 12, 8, 10]
    sizes = record_prefills(engine, monkeypatch)
    jobs = [
        generate(engine, p, f"r{i}", max_tokens=n, temperature=0)
        for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
    ]
    outputs: list[Output] = run(arrive_together(engine, jobs))
    assert sizes == [len(prompts)]  # one prefill pass for all eight
    for prompt, n, out in zip(prompts, lengths, outputs, strict=True):
        assert out.token_ids == loaded.reference(prompt, n)
        assert out.deltas[0].prompt_tokens == len(prompt)
    solo = [
        run(generate(engine, p, max_tokens=n, temperature=0))
        for p, n in zip(prompts, lengths, strict=True)
    ]
    assert [o.text for o in outputs] == [o.text for o in solo]


def test_a_group_with_mixed_parameters_joins_a_running_batch(
    padded: tuple[Loaded, HFGenerationEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that end at their first token leave the group before it joins; the others join
    rows already decoding; each request keeps its own parameters."""
    loaded, engine = padded
    prompts = [loaded.ids(text) for text in PROMPTS[:6]]
    forced = loaded.tokenizer.encode("x", add_special_tokens=False)[0]
    params: list[dict[str, Any]] = [
        {"max_tokens": 1, "temperature": 0},  # done at prefill
        {"max_tokens": 10, "temperature": 0},
        {"max_tokens": 8, "temperature": 0, "logprobs": 2},
        {"max_tokens": 6, "temperature": 0, "logit_bias": {forced: 100.0}},
        {"max_tokens": 9, "temperature": 1.0, "seed": 5, "ignore_eos": True},
        {"max_tokens": 1, "temperature": 0},  # done at prefill
    ]

    async def scenario() -> tuple[Output, list[Output]]:
        first = asyncio.create_task(
            generate(engine, loaded.ids(PROMPTS[7]), "running", max_tokens=16, temperature=0)
        )
        await asyncio.to_thread(wait_for, lambda: engine.num_running == 1)
        jobs = [
            generate(engine, p, f"g{i}", **kw)
            for i, (p, kw) in enumerate(zip(prompts, params, strict=True))
        ]
        together = await arrive_together(engine, jobs)
        return await first, together

    sizes = record_prefills(engine, monkeypatch)
    running, outputs = run(scenario())
    assert sizes[-1] == len(prompts)
    assert running.token_ids == loaded.reference(loaded.ids(PROMPTS[7]), 16)
    for prompt, kw, out in zip(prompts, params, outputs, strict=True):
        alone = run(generate(engine, prompt, **kw))
        assert out.token_ids == alone.token_ids and out.text == alone.text
    assert outputs[0].token_ids == loaded.reference(prompts[0], 1)
    assert outputs[3].token_ids == [forced] * 6
    logprobs = [e for d in outputs[2].deltas for e in d.logprobs or []]
    assert [e.token_id for e in logprobs] == outputs[2].token_ids


def test_a_failing_prefill_fails_its_group_and_the_engine_recovers(
    gpt2: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(gpt2)
    real = engine._batch.prefill
    calls = {"n": 0}

    def flaky(prompts: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("prefill fell over")
        return real(prompts)

    monkeypatch.setattr(engine._batch, "prefill", flaky)
    prompts = [gpt2.ids(text) for text in PROMPTS[:3]]
    try:
        jobs = [
            generate(engine, p, f"f{i}", max_tokens=4, temperature=0) for i, p in enumerate(prompts)
        ]
        failed = run(arrive_together(engine, jobs))
        assert all(
            isinstance(f, HFRuntimeError) and "prefill fell over" in f.message for f in failed
        )
        again = run(generate(engine, prompts[1], max_tokens=5, temperature=0))
        assert again.token_ids == gpt2.reference(prompts[1], 5)
    finally:
        engine.close()


def test_grouped_query_attention_is_installed_only_where_heads_are_shared(
    llama: Loaded, gpt2: Loaded
) -> None:
    llama_engine, gpt2_engine = make_engine(llama), make_engine(gpt2)
    try:
        assert llama.model.config._attn_implementation == GQA_ATTENTION
        assert gpt2.model.config._attn_implementation != GQA_ATTENTION
    finally:
        llama_engine.close()
        gpt2_engine.close()


# ---------------------------------------------------------------------- the pieces


def test_prefill_groups_by_length_within_budget_and_padding_waste() -> None:
    assert prefill_groups([30, 41, 35, 38], budget=4096) == [[0, 2, 3, 1]]
    # A long prompt would pad every short one to its length: it goes alone.
    long = 2 * PADDING_WASTE_TOKENS
    assert prefill_groups([10, long, 12, 11], budget=4096) == [[0, 3, 2], [1]]
    # The padded size of a group stays within the budget.
    groups = prefill_groups([100] * 10, budget=450)
    assert [len(g) for g in groups] == [4, 4, 2]
    assert prefill_groups([5000], budget=4096) == [[0]]  # alone, even over the budget
    assert prefill_groups([], budget=4096) == []


def test_growable_layer_writes_in_place_and_keeps_its_contents() -> None:
    layer = GrowableLayer()
    chunks = [torch.randn(2, 3, n, 4) for n in (5, 1, 1, 40, 1)]
    for chunk in chunks:
        keys, values = layer.update(chunk, chunk * 2)
    expected = torch.cat(chunks, dim=2)
    assert torch.equal(keys, expected) and torch.equal(values, expected * 2)
    assert layer.get_seq_length() == expected.shape[2]
    before = layer._key_buffer
    layer.update(chunks[-1], chunks[-1])  # room left: no new buffer
    assert layer._key_buffer is before


def test_growable_layer_from_parts_left_pads_shorter_parts() -> None:
    a, b = torch.ones(1, 2, 3, 4), torch.full((2, 2, 5, 4), 2.0)
    layer = GrowableLayer.from_parts([a, b], [a * 3, b * 3], length=5)
    assert layer.keys.shape == (3, 2, 5, 4)
    assert torch.equal(layer.keys[0, :, :2], torch.zeros(2, 2, 4))
    assert torch.equal(layer.keys[0, :, 2:], a[0]) and torch.equal(layer.keys[1:], b)
    assert torch.equal(layer.values[1:], b * 3)


def test_outbox_wakes_each_loop_once_per_flush() -> None:
    class Consumer:
        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop, self.queue, self.aborted = loop, asyncio.Queue(), False

    async def scenario() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        consumers = [Consumer(loop) for _ in range(3)]
        calls = {"n": 0}
        real = loop.call_soon_threadsafe

        def counting(*args: Any) -> Any:
            calls["n"] += 1
            return real(*args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        outbox = Outbox()
        for step in range(2):
            for consumer in consumers:
                outbox.put(consumer, step)
        outbox.flush()  # from any thread; here the loop's own
        await asyncio.sleep(0)
        assert calls["n"] == 1
        return [[c.queue.get_nowait() for _ in range(2)] for c in consumers]

    assert run(scenario()) == [[0, 1]] * 3
    closed = asyncio.new_event_loop()
    closed.close()

    class Orphan:
        loop, queue, aborted = closed, asyncio.Queue(), False

    orphan = Orphan()
    outbox = Outbox()
    outbox.put(orphan, "x")
    outbox.flush()
    assert orphan.aborted


@pytest.mark.slow
def test_smollm2_prompts_prefilled_together_equal_generate(
    smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real model: rotary positions, grouped-query attention (9 heads, 3 key/value)."""
    loaded = _load(smollm2_dir, seq2seq=False)
    engine = make_engine(loaded, max_model_len=8192)
    questions = ["What is the capital of France?", "Name three colors.", "Count to five.",
                 "Say hello.", "What is 2+2? Answer with one number and nothing else.",
                 "Who wrote Hamlet?", "Define gravity in one short sentence, please.",
                 "Translate 'cat' to French."]  # fmt: skip
    prompts = [
        loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
            return_dict=False,
        )
        for q in questions
    ]  # fmt: skip
    sizes = record_prefills(engine, monkeypatch)
    try:
        jobs = [
            generate(engine, p, f"q{i}", max_tokens=16, temperature=0)
            for i, p in enumerate(prompts)
        ]
        outputs = run(arrive_together(engine, jobs))
        assert sizes == [len(prompts)]
        for prompt, out in zip(prompts, outputs, strict=True):
            assert out.token_ids == loaded.reference(prompt, 16)
    finally:
        engine.close()
