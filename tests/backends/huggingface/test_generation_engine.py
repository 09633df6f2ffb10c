"""The continuous-batching engine on tiny random models (gpt2 causal, t5 seq2seq), both batch
kinds, checked against transformers' own `generate()`; plus SmolLM2 (slow)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
from hf_runtime.decoding.sequence import SequenceState
from hf_runtime.errors import HFRuntimeError, InvalidInput, ModelLoadFailed, Overloaded
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams

PROMPTS = [
    "The capital of France is",
    "Hello",
    "wir setzen Worte und",
    "café naïve",
    "How are you today? I am fine, thank you, and",
    "Paris",
    "x y z",
    "The the the",
]
MAX_MODEL_LEN = 64


@dataclass
class Loaded:
    model: Any
    tokenizer: Any

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def reference(self, prompt: list[int], max_tokens: int) -> list[int]:
        """transformers' greedy decoding: what the engine must reproduce token for token."""
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                do_sample=False,
            )  # fmt: skip
        start = 1 if self.model.config.is_encoder_decoder else len(prompt)  # decoder start
        return out[0, start:].tolist()


def _load(path: Path, seq2seq: bool) -> Loaded:
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = cls.from_pretrained(path, dtype=torch.float32).eval()
    return Loaded(model, AutoTokenizer.from_pretrained(path))


@pytest.fixture(scope="module")
def gpt2(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["gpt2-chat"], seq2seq=False)


@pytest.fixture(scope="module")
def t5(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["t5"], seq2seq=True)


def make_engine(loaded: Loaded, **kwargs: Any) -> HFGenerationEngine:
    options: dict[str, Any] = {
        "max_model_len": MAX_MODEL_LEN, "max_num_seqs": 8, "max_queue_size": 16,
    }  # fmt: skip
    options.update(kwargs)
    eos = {loaded.model.generation_config.eos_token_id, loaded.tokenizer.eos_token_id}
    return HFGenerationEngine(loaded.model, loaded.tokenizer, eos_token_ids=eos, **options)


@pytest.fixture(
    scope="module",
    params=["gpt2-padded", "gpt2-per-row", "t5-padded", "t5-per-row"],
)
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Loaded, HFGenerationEngine]]:
    name, kind = request.param.split("-", 1)
    loaded = request.getfixturevalue(name)
    engine = make_engine(loaded, padded_batching=kind == "padded")
    assert engine.batch_kind == ("PaddedDecodeBatch" if kind == "padded" else "PerRowDecodeBatch")
    yield loaded, engine
    engine.close()


@pytest.fixture
def gpt2_engine(gpt2: Loaded) -> Iterator[HFGenerationEngine]:
    engine = make_engine(gpt2)
    yield engine
    engine.close()


@dataclass
class Output:
    token_ids: list[int]
    text: str
    deltas: list[GenerationDelta]

    @property
    def finish_reason(self) -> str | None:
        return self.deltas[-1].finish_reason


async def generate(
    engine: HFGenerationEngine, prompt: list[int], request_id: str = "r", **params: Any
) -> Output:
    request = GenerationRequest(request_id, prompt, SamplingParams(**params))
    deltas = [delta async for delta in engine.generate(request)]
    ids = [t for d in deltas for t in d.token_ids]
    return Output(ids, "".join(d.text for d in deltas), deltas)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# ---------------------------------------------------------------------- greedy equality


def test_greedy_alone_equals_generate(setup: tuple[Loaded, HFGenerationEngine]) -> None:
    loaded, engine = setup
    for text in PROMPTS[:3]:
        prompt = loaded.ids(text)
        out = run(generate(engine, prompt, max_tokens=12, temperature=0))
        assert out.token_ids == loaded.reference(prompt, 12)


def test_eight_concurrent_greedy_equal_their_solo_runs(
    setup: tuple[Loaded, HFGenerationEngine],
) -> None:
    loaded, engine = setup
    prompts = [loaded.ids(t) for t in PROMPTS]
    lengths = [6, 16, 9, 12, 16, 3, 14, 10]  # rows leave the batch at different steps

    async def staggered() -> list[Output]:
        tasks = []
        for i, (prompt, n) in enumerate(zip(prompts, lengths, strict=True)):
            job = generate(engine, prompt, f"r{i}", max_tokens=n, temperature=0)
            tasks.append(asyncio.create_task(job))
            if i % 3 == 2:
                await asyncio.sleep(0.02)  # later arrivals join a running batch
        return await asyncio.gather(*tasks)

    outputs = run(staggered())
    for prompt, n, out in zip(prompts, lengths, outputs, strict=True):
        assert out.token_ids == loaded.reference(prompt, n)
    solo = [
        run(generate(engine, p, max_tokens=n, temperature=0))
        for p, n in zip(prompts, lengths, strict=True)
    ]
    assert [o.text for o in outputs] == [o.text for o in solo]


def test_streamed_text_is_the_decoded_output(setup: tuple[Loaded, HFGenerationEngine]) -> None:
    loaded, engine = setup
    out = run(generate(engine, loaded.ids(PROMPTS[3]), max_tokens=16, temperature=0))
    # Streamed per token (a consumer that falls behind gets consecutive deltas merged).
    assert len(out.deltas) > 1 and all(d.token_ids for d in out.deltas)
    expected = loaded.tokenizer.decode(
        out.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    # Byte-level BPE decodes the same in context; t5 decodes without the prompt as context.
    assert out.text == expected
    assert out.deltas[0].prompt_tokens == len(loaded.ids(PROMPTS[3]))
    assert all(d.prompt_tokens == 0 for d in out.deltas[1:])
    assert out.finish_reason in ("length", "stop")


def test_seeded_sampling_is_reproducible_and_seed_dependent(
    setup: tuple[Loaded, HFGenerationEngine],
) -> None:
    loaded, engine = setup
    prompt = loaded.ids(PROMPTS[0])

    async def sample(seed: int) -> list[int]:
        out = await generate(
            engine, prompt, max_tokens=16, temperature=1.0, seed=seed, ignore_eos=True
        )
        return out.token_ids

    async def together() -> list[list[int]]:
        noise = generate(engine, prompt, max_tokens=16, temperature=1.0)  # unseeded neighbour
        results = await asyncio.gather(sample(7), sample(7), sample(8), noise)
        return [results[0], results[1], results[2]]

    first, again, other = run(together())
    assert first == again == run(sample(7))
    assert first != other


def test_stop_string_is_removed_and_ends_the_sequence(
    setup: tuple[Loaded, HFGenerationEngine],
) -> None:
    loaded, engine = setup
    prompt = loaded.ids(PROMPTS[4])
    # Seeded sampling: varied text on any tiny model, and the same tokens up to the stop.
    params: dict[str, Any] = {"max_tokens": 16, "temperature": 1.0, "seed": 3, "ignore_eos": True}
    full = run(generate(engine, prompt, **params))
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    assert len(stop) == 2
    out = run(generate(engine, prompt, stop=[stop], **params))
    assert out.text == full.text[: full.text.index(stop)]
    assert (out.finish_reason, out.deltas[-1].stop_reason) == ("stop", stop)


def test_per_request_logit_bias_does_not_leak_to_batch_neighbours(
    setup: tuple[Loaded, HFGenerationEngine],
) -> None:
    loaded, engine = setup
    prompt = loaded.ids(PROMPTS[0])
    forced = loaded.tokenizer.encode("x", add_special_tokens=False)[0]

    async def pair() -> tuple[Output, Output]:
        return await asyncio.gather(
            generate(engine, prompt, "biased", max_tokens=8, temperature=0,
                     logit_bias={forced: 100.0}),
            generate(engine, prompt, "plain", max_tokens=8, temperature=0),
        )  # fmt: skip

    biased, plain = run(pair())
    assert biased.token_ids == [forced] * 8
    assert plain.token_ids == loaded.reference(prompt, 8)


def test_logprobs_are_aligned_with_tokens(setup: tuple[Loaded, HFGenerationEngine]) -> None:
    loaded, engine = setup
    out = run(generate(engine, loaded.ids(PROMPTS[1]), max_tokens=6, temperature=0, logprobs=3))
    entries = [e for d in out.deltas for e in d.logprobs or []]
    assert [e.token_id for e in entries] == out.token_ids
    for entry in entries:
        assert len(entry.top) == 3
        assert entry.top[0][0] == entry.token_id  # greedy, no processing: the top raw token
        assert entry.logprob == pytest.approx(entry.top[0][2])
        assert entry.logprob <= 0


def test_max_tokens_none_fills_the_context(setup: tuple[Loaded, HFGenerationEngine]) -> None:
    loaded, engine = setup
    prompt = loaded.ids(PROMPTS[0])
    out = run(generate(engine, prompt, max_tokens=None, temperature=0, ignore_eos=True))
    expected = MAX_MODEL_LEN if engine.is_encoder_decoder else MAX_MODEL_LEN - len(prompt)
    assert len(out.token_ids) == expected
    assert out.finish_reason == "length"


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("prompt", "params", "param", "words"),
    [
        ([1] * 60, {"max_tokens": 10}, "max_tokens", ["64", "70", "60", "10"]),
        ([1] * 64, {}, "prompt", ["64"]),
        ([], {}, "prompt", ["at least one token"]),
        ([1, 10**6], {}, "prompt", ["1000000"]),
        ([1], {"temperature": -1.0}, "temperature", []),
    ],
)
def test_invalid_requests_fail_before_admission(
    gpt2_engine: HFGenerationEngine,
    prompt: list[int],
    params: dict[str, Any],
    param: str,
    words: list[str],
) -> None:
    with pytest.raises(InvalidInput) as info:
        run(generate(gpt2_engine, prompt, **params))
    assert info.value.param == param
    for word in words:
        assert word in info.value.message
    assert gpt2_engine.num_waiting == 0


# ---------------------------------------------------------------------- lifecycle


def test_closing_the_iterator_frees_the_slot(gpt2: Loaded, gpt2_engine: HFGenerationEngine) -> None:
    async def start_then_close() -> None:
        request = GenerationRequest("long", gpt2.ids("Hello"), SamplingParams(ignore_eos=True))
        stream = gpt2_engine.generate(request)
        await anext(stream)
        assert gpt2_engine.num_running == 1
        await stream.aclose()

    run(start_then_close())
    wait_for(lambda: gpt2_engine.num_running == 0)


def test_cancelling_the_consumer_frees_the_slot(
    gpt2: Loaded, gpt2_engine: HFGenerationEngine
) -> None:
    async def cancel_midway() -> None:
        started = asyncio.Event()

        async def consume() -> None:
            request = GenerationRequest("c", gpt2.ids("Hello"), SamplingParams(ignore_eos=True))
            async for _ in gpt2_engine.generate(request):
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_midway())
    wait_for(lambda: gpt2_engine.num_running == 0)


def test_a_failing_request_fails_alone(
    gpt2: Loaded, gpt2_engine: HFGenerationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = SequenceState.step

    def poisoned_step(self: SequenceState, logits: torch.Tensor) -> Any:
        if self.request.request_id == "poison" and len(self.output_ids) == 3:
            raise RuntimeError("logits processor exploded")
        return real_step(self, logits)

    monkeypatch.setattr(SequenceState, "step", poisoned_step)
    prompts = [gpt2.ids(t) for t in PROMPTS[:4]]

    async def mixed() -> list[Any]:
        jobs = [generate(gpt2_engine, p, f"ok{i}", max_tokens=10, temperature=0)
                for i, p in enumerate(prompts)]  # fmt: skip
        jobs.insert(2, generate(gpt2_engine, prompts[0], "poison", max_tokens=10, ignore_eos=True))
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = run(mixed())
    poisoned = results.pop(2)
    assert isinstance(poisoned, HFRuntimeError)
    assert "logits processor exploded" in poisoned.message
    for prompt, out in zip(prompts, results, strict=True):
        assert out.token_ids == gpt2.reference(prompt, 10)
    # The engine thread is alive and serving.
    assert run(generate(gpt2_engine, prompts[1], max_tokens=4, temperature=0)).token_ids == (
        gpt2.reference(prompts[1], 4)
    )


def test_a_failing_forward_fails_its_batch_and_the_engine_recovers(
    gpt2: Loaded, gpt2_engine: HFGenerationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = gpt2_engine._batch
    real_decode = batch.decode
    calls = {"n": 0}

    def flaky_decode() -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("device fell over")
        return real_decode()

    monkeypatch.setattr(batch, "decode", flaky_decode)
    with pytest.raises(HFRuntimeError, match="device fell over"):
        run(generate(gpt2_engine, gpt2.ids("Hello"), max_tokens=8, ignore_eos=True))
    prompt = gpt2.ids("Paris")
    assert run(generate(gpt2_engine, prompt, max_tokens=5, temperature=0)).token_ids == (
        gpt2.reference(prompt, 5)
    )


def test_full_queue_is_overloaded_and_drains(gpt2: Loaded) -> None:
    engine = make_engine(gpt2, max_num_seqs=1, max_queue_size=1)

    async def scenario() -> Output:
        long_request = GenerationRequest("a", gpt2.ids("Hello"), SamplingParams(ignore_eos=True))
        running = engine.generate(long_request)
        await anext(running)
        queued = asyncio.create_task(
            generate(engine, gpt2.ids("Paris"), "b", max_tokens=3, ignore_eos=True)
        )
        await asyncio.to_thread(wait_for, lambda: engine.num_waiting == 1)
        with pytest.raises(Overloaded):
            await generate(engine, gpt2.ids("x"), "c", max_tokens=3)
        await running.aclose()  # frees the slot: the queued request runs
        return await queued

    try:
        assert len(run(scenario()).token_ids) == 3
    finally:
        engine.close()


def test_close_ends_waiting_and_running_sequences(gpt2: Loaded) -> None:
    engine = make_engine(gpt2)

    async def scenario() -> None:
        request = GenerationRequest("a", gpt2.ids("Hello"), SamplingParams(ignore_eos=True))
        stream = engine.generate(request)
        await anext(stream)
        await asyncio.to_thread(engine.close)
        with pytest.raises(HFRuntimeError):
            async for _ in stream:
                pass

    run(scenario())
    assert not engine._thread.is_alive()


# ---------------------------------------------------------------------- real model


@pytest.mark.slow
def test_smollm2_greedy_equals_generate_alone_and_under_concurrency(smollm2_dir: Path) -> None:
    loaded = _load(smollm2_dir, seq2seq=False)
    engine = make_engine(loaded, max_model_len=8192)
    questions = ["What is the capital of France?", "Name three colors.", "Count to five.",
                 "Say hello.", "What is 2+2?", "Who wrote Hamlet?", "Define gravity.",
                 "Translate 'cat' to French."]  # fmt: skip
    prompts = [
        loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
            return_dict=False,
        )
        for q in questions
    ]  # fmt: skip
    try:
        alone = run(generate(engine, prompts[0], max_tokens=12, temperature=0))
        assert alone.token_ids == loaded.reference(prompts[0], 12)
        assert "Paris" in alone.text

        async def together() -> list[Output]:
            return await asyncio.gather(
                *(generate(engine, p, f"q{i}", max_tokens=12, temperature=0)
                  for i, p in enumerate(prompts))
            )  # fmt: skip

        for prompt, out in zip(prompts, run(together()), strict=True):
            assert out.token_ids == loaded.reference(prompt, 12)
    finally:
        engine.close()


# ---------------------------------------------------------------------- engine death


def test_a_dead_inference_thread_fails_requests_and_says_how(gpt2: Loaded) -> None:
    """The thread dies (a bug outside the per-step guard): the waiting request and every later
    one get ModelLoadFailed (503) naming the death, never a hang; `failure` says it too."""
    engine = make_engine(gpt2)
    try:
        engine._observe_queue_times = _explode  # type: ignore[method-assign]
        with pytest.raises(ModelLoadFailed, match="Its inference thread died: RuntimeError: boom"):
            run(generate(engine, gpt2.ids("Hello"), max_tokens=4))
        wait_for(lambda: not engine._thread.is_alive())
        assert not engine.ready
        assert engine.failure == "Its inference thread died: RuntimeError: boom"
        with pytest.raises(ModelLoadFailed, match="inference thread died"):
            run(generate(engine, gpt2.ids("Hello"), max_tokens=4))
    finally:
        engine.close(timeout=1)


def _explode(admitted: Any) -> None:
    raise RuntimeError("boom")
