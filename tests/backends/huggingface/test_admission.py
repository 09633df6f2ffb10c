"""The huggingface engine under overload (the admission rule shared with vLLM) and the metrics
it feeds: queue time, running/waiting, and the OpenAI layer's token timings on it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
from hf_runtime.protocols.openai.choice_streams import collect
from hf_runtime.protocols.openai.request_params import fan_out
from hf_runtime.types import SamplingParams
from tests.backends import admission_scenarios as scenarios
from tests.backends.huggingface.test_generation_engine import Loaded, _load, make_engine
from tests.observability.support import generation_samples, increase


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_models: dict[str, Path]) -> Loaded:
    return _load(tiny_models["gpt2-chat"], seq2seq=False)


@pytest.fixture
def small_engine(tiny_gpt2: Loaded, request: pytest.FixtureRequest) -> Iterator[HFGenerationEngine]:
    """Capacity 5: two decoding, three waiting."""
    engine = make_engine(tiny_gpt2, max_num_seqs=2, max_queue_size=3, name=request.node.name)
    yield engine
    engine.close()


def test_bursts_beyond_capacity_are_overloaded(
    tiny_gpt2: Loaded, small_engine: HFGenerationEngine
) -> None:
    prompt = tiny_gpt2.ids("Hello")
    asyncio.run(scenarios.bursts_are_cut_at_capacity(small_engine, small_engine.admission, prompt))
    assert small_engine.stats()["rejected_requests"] == 3


def test_disconnects_release_capacity(tiny_gpt2: Loaded, small_engine: HFGenerationEngine) -> None:
    prompt = tiny_gpt2.ids("Hello")
    asyncio.run(
        scenarios.disconnects_release_capacity(small_engine, small_engine.admission, prompt)
    )


def test_running_waiting_and_queue_time(
    tiny_gpt2: Loaded, small_engine: HFGenerationEngine
) -> None:
    name = small_engine.name
    prompt = tiny_gpt2.ids("Paris")

    async def scenario() -> dict[str, int]:
        release = asyncio.Event()
        clients = [
            asyncio.create_task(scenarios.hold(small_engine, i, prompt, release)) for i in range(4)
        ]
        await scenarios.wait_until(lambda: small_engine.admission.in_flight == 4)
        # Two decode; the other two wait until those finish (context full) in the engine.
        await scenarios.wait_until(lambda: small_engine.num_running == 2)
        during = small_engine.stats()
        release.set()
        await asyncio.gather(*clients)
        # Closed sequences leave the decoding batch at the engine thread's next step.
        await scenarios.wait_until(lambda: small_engine.num_running == 0)
        return during

    before = generation_samples(name, "huggingface")
    during = asyncio.run(scenario())
    assert during["running"] == 2 and during["waiting"] == 2
    after = small_engine.stats()
    assert (after["running"], after["waiting"], after["rejected_requests"]) == (0, 0, 0)
    assert increase(before, generation_samples(name, "huggingface"))["queue"] == 4


def test_openai_layer_times_tokens_on_huggingface(
    tiny_gpt2: Loaded, small_engine: HFGenerationEngine
) -> None:
    prompt = tiny_gpt2.ids("The capital of France is")
    params = SamplingParams(max_tokens=5, ignore_eos=True, temperature=0)
    specs = fan_out("cmpl-1", [prompt], 2, params)
    before = generation_samples("hf-openai", "huggingface")
    results = asyncio.run(collect(small_engine, specs, model="hf-openai", backend="huggingface"))
    assert [r.completion_tokens for r in results] == [5, 5]
    change = increase(before, generation_samples("hf-openai", "huggingface"))
    # One first token per sequence; the prompt counted once for its two choices (as usage is).
    assert (change["ttft"], change["generated"], change["prompt"]) == (2, 10, len(prompt))
    assert 0 < change["itl"] <= 8  # deltas may coalesce when the reader lags a step
