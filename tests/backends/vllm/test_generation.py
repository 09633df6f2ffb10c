"""Generation on vLLM (tiny Llama): parity with the huggingface backend, streaming, abort,
sampling parameters, limits and metrics."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.model import Predictor, ServedModel, TextGenerator, require_capability
from hf_runtime.protocols.openai.choice_streams import collect as openai_collect
from hf_runtime.protocols.openai.request_params import fan_out
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams
from tests.backends import admission_scenarios as scenarios
from tests.backends.vllm.conftest import (
    LLAMA_MAX_MODEL_LEN,
    LoopRunner,
    model_config,
    post_json,
    requires_vllm,
    source_for,
    stream_events,
)
from tests.fakes import FakeRegistry
from tests.observability.support import generation_samples, increase

pytestmark = [requires_vllm, pytest.mark.vllm]

MAX_MODEL_LEN = LLAMA_MAX_MODEL_LEN  # `llama` and `hf_llama` (conftest.py)
PROMPTS = ["The capital of France is", "Hello world! This is"]


async def collect(model: Any, prompt: list[int], **params: Any) -> list[GenerationDelta]:
    request = GenerationRequest("test", prompt, SamplingParams(**params))
    return [delta async for delta in model.capability(TextGenerator).generate(request)]


def text_of(deltas: list[GenerationDelta]) -> str:
    return "".join(d.text for d in deltas)


def ids_of(deltas: list[GenerationDelta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


def test_served_model_surface(llama: Any, run: LoopRunner) -> None:
    assert isinstance(llama, ServedModel)
    assert (llama.name, llama.task, llama.ready) == ("m", "text_generation", True)
    assert llama.capability(TextGenerator) is llama
    assert (llama.max_model_len, llama.is_encoder_decoder) == (MAX_MODEL_LEN, False)
    assert llama.metadata().platform == "vllm"
    with pytest.raises(Unsupported):
        require_capability(llama, Predictor)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_completion_equals_huggingface(
    llama: Any, hf_llama: Any, run: LoopRunner, prompt: str
) -> None:
    ids = run(llama.tokenize(prompt))
    assert ids == run(hf_llama.tokenize(prompt))
    ours = run(collect(llama, ids, temperature=0, max_tokens=24))
    theirs = run(collect(hf_llama, ids, temperature=0, max_tokens=24))
    assert ids_of(ours) == ids_of(theirs)
    assert text_of(ours) == text_of(theirs)
    assert len(set(ids_of(ours))) > 3, "the tiny model should not just repeat one token"
    assert ours[-1].finish_reason == theirs[-1].finish_reason


@pytest.mark.parametrize(
    "params",
    [
        {"frequency_penalty": 1.0},
        {"presence_penalty": 1.5},
        {"repetition_penalty": 1.5},
        {"logit_bias": {40: 3.0, 41: -100.0}},
    ],
)
def test_greedy_with_logit_processing_equals_huggingface(
    llama: Any, hf_llama: Any, run: LoopRunner, params: dict[str, Any]
) -> None:
    """Penalties and biases change the greedy text the same way on both backends."""
    prompt = run(llama.tokenize(PROMPTS[1]))
    plain = ids_of(run(collect(llama, prompt, temperature=0, max_tokens=24, ignore_eos=True)))
    ours = run(collect(llama, prompt, temperature=0, max_tokens=24, ignore_eos=True, **params))
    theirs = run(collect(hf_llama, prompt, temperature=0, max_tokens=24, ignore_eos=True, **params))
    assert ids_of(ours) == ids_of(theirs)
    assert ids_of(ours) != plain


def test_greedy_chat_equals_huggingface(llama: Any, hf_llama: Any, run: LoopRunner) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = run(llama.render_chat(messages))
    assert ids == run(hf_llama.render_chat(messages))
    ours = run(collect(llama, ids, temperature=0, max_tokens=20))
    theirs = run(collect(hf_llama, ids, temperature=0, max_tokens=20))
    assert (ids_of(ours), text_of(ours)) == (ids_of(theirs), text_of(theirs))


def test_streams_deltas_with_usage_on_the_first(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    deltas = run(collect(llama, prompt, temperature=0, max_tokens=12, ignore_eos=True))
    assert len(deltas) > 1
    assert deltas[0].prompt_tokens == len(prompt)
    assert all(d.prompt_tokens == 0 for d in deltas[1:])
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == "length" and deltas[-1].stop_reason is None
    assert len(ids_of(deltas)) == 12
    expected = llama._tokenizer.decode(ids_of(deltas), skip_special_tokens=True)
    assert text_of(deltas) == expected


def _unfinished(model: Any) -> int:
    return int(model.engine.engine.get_num_unfinished_requests())


def test_closing_the_stream_aborts_the_request(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[1]))

    async def read_two_then_close() -> int:
        request = GenerationRequest(
            "abort", prompt, SamplingParams(max_tokens=100, ignore_eos=True)
        )
        stream = llama.capability(TextGenerator).generate(request)
        for _ in range(2):
            await anext(stream)
        running = _unfinished(llama)
        await stream.aclose()
        return running

    assert run(read_two_then_close()) == 1
    assert _unfinished(llama) == 0


def test_cancelling_the_reader_aborts_the_request(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[1]))

    async def cancel_after_first_delta() -> None:
        first = asyncio.Event()

        async def read() -> None:
            request = GenerationRequest(
                "cancel", prompt, SamplingParams(max_tokens=100, ignore_eos=True)
            )
            async for _ in llama.capability(TextGenerator).generate(request):
                first.set()

        task = asyncio.create_task(read())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_after_first_delta())
    assert _unfinished(llama) == 0


def test_n_sequences_as_concurrent_requests_follow_their_seeds(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))

    async def sample(seeds: list[int]) -> list[list[int]]:
        runs = [collect(llama, prompt, temperature=1.0, max_tokens=16, seed=s) for s in seeds]
        return [ids_of(deltas) for deltas in await asyncio.gather(*runs)]

    first, again, second, third = run(sample([1, 1, 2, 3]))
    assert first == again
    assert len({tuple(first), tuple(second), tuple(third)}) > 1


def test_stop_string_ends_and_is_trimmed(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    full = text_of(run(collect(llama, prompt, temperature=0, max_tokens=24, ignore_eos=True)))
    stop = full[6:9]
    assert stop.strip(), f"pick a visible stop string from {full!r}"
    deltas = run(collect(llama, prompt, temperature=0, max_tokens=24, ignore_eos=True, stop=[stop]))
    assert text_of(deltas) == full[: full.index(stop)]
    assert (deltas[-1].finish_reason, deltas[-1].stop_reason) == ("stop", stop)


def test_stop_token_id_ends_the_sequence(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[1]))
    full = ids_of(run(collect(llama, prompt, temperature=0, max_tokens=16, ignore_eos=True)))
    stop_id = full[4]
    cut = full.index(stop_id)
    deltas = run(
        collect(
            llama, prompt, temperature=0, max_tokens=16, ignore_eos=True, stop_token_ids=[stop_id]
        )
    )
    assert ids_of(deltas) == full[: cut + 1]
    assert (deltas[-1].finish_reason, deltas[-1].stop_reason) == ("stop", stop_id)


def test_logprobs_equal_huggingface(llama: Any, hf_llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    ours = run(collect(llama, prompt, temperature=0, max_tokens=6, logprobs=3))
    theirs = run(collect(hf_llama, prompt, temperature=0, max_tokens=6, logprobs=3))
    ours_lp = [lp for d in ours for lp in d.logprobs or []]
    theirs_lp = [lp for d in theirs for lp in d.logprobs or []]
    assert len(ours_lp) == len(theirs_lp) == 6
    for mine, reference in zip(ours_lp, theirs_lp, strict=True):
        assert (mine.token_id, mine.token) == (reference.token_id, reference.token)
        assert mine.logprob == pytest.approx(reference.logprob, abs=1e-3)
        assert [(i, t) for i, t, _ in mine.top] == [(i, t) for i, t, _ in reference.top]
        assert [v for *_, v in mine.top] == pytest.approx([v for *_, v in reference.top], abs=1e-3)
        assert len(mine.top) == 3 and mine.top[0][0] == mine.token_id  # greedy: the best one


def test_logit_bias_forces_a_token(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    forced = run(llama.tokenize(" Paris", add_special_tokens=False))[0]
    deltas = run(collect(llama, prompt, temperature=0, max_tokens=5, logit_bias={forced: 100.0}))
    assert ids_of(deltas) == [forced] * 5


def test_max_tokens_none_fills_the_context(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(" ".join(PROMPTS * 12)))[: MAX_MODEL_LEN - 20]
    deltas = run(collect(llama, prompt, temperature=0, ignore_eos=True))
    assert len(ids_of(deltas)) == MAX_MODEL_LEN - len(prompt) == 20
    assert deltas[-1].finish_reason == "length"


def test_context_limits_are_invalid_input(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    with pytest.raises(InvalidInput) as too_many:
        run(collect(llama, prompt, max_tokens=200))
    assert too_many.value.param == "max_tokens"
    assert str(MAX_MODEL_LEN) in too_many.value.message
    assert str(len(prompt) + 200) in too_many.value.message
    with pytest.raises(InvalidInput) as too_long:
        run(collect(llama, [5] * MAX_MODEL_LEN))
    assert too_long.value.param == "prompt"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"logit_bias": {10**6: 1.0}}, "logit_bias"),
        ({"logprobs": 50}, "logprobs"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop_token_ids": [10**6]}, "stop_token_ids"),
    ],
)
def test_bad_parameters_are_invalid_input(
    llama: Any, run: LoopRunner, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        run(collect(llama, [1, 2, 3], max_tokens=4, **params))
    assert error.value.param == param


@pytest.fixture
def small_capacity(llama: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The huggingface engine's test capacity (2 decoding + 3 waiting) on vLLM's engine."""
    admission = llama.engine.admission
    monkeypatch.setattr(admission, "max_num_seqs", 2)
    monkeypatch.setattr(admission, "max_queue_size", 3)
    return admission


def test_bursts_beyond_capacity_are_overloaded(
    llama: Any, run: LoopRunner, small_capacity: Any
) -> None:
    """256 requests x n=16 used to all pass a check made before an await; now the same burst
    gets the same 429s as on the huggingface backend (tests/backends/admission_scenarios)."""
    prompt = run(llama.tokenize(PROMPTS[0]))
    rejected = llama.stats()["rejected_requests"]
    run(
        scenarios.bursts_are_cut_at_capacity(
            llama.capability(TextGenerator), small_capacity, prompt
        )
    )
    assert _unfinished(llama) == 0
    assert llama.stats() == {"running": 0, "waiting": 0, "rejected_requests": rejected + 3}


def test_disconnects_release_capacity(llama: Any, run: LoopRunner, small_capacity: Any) -> None:
    prompt = run(llama.tokenize(PROMPTS[0]))
    run(
        scenarios.disconnects_release_capacity(
            llama.capability(TextGenerator), small_capacity, prompt
        )
    )
    assert _unfinished(llama) == 0


def test_running_waiting_queue_time_and_token_metrics(llama: Any, run: LoopRunner) -> None:
    prompt = run(llama.tokenize(PROMPTS[1]))

    async def held_by_two_clients() -> dict[str, int]:
        release = asyncio.Event()
        clients = [
            asyncio.create_task(scenarios.hold(llama.capability(TextGenerator), i, prompt, release))
            for i in range(2)
        ]
        await scenarios.wait_until(lambda: llama.stats()["running"] == 2)
        during = llama.stats()
        release.set()
        await asyncio.gather(*clients)
        return during

    before = generation_samples("m", "vllm")
    assert run(held_by_two_clients())["running"] == 2
    # vLLM's RequestOutput.metrics (queued_ts -> scheduled_ts) gave each sequence a queue time.
    assert increase(before, generation_samples("m", "vllm"))["queue"] == 2

    params = SamplingParams(max_tokens=5, ignore_eos=True, temperature=0)
    specs = fan_out("cmpl-vllm", [prompt], 2, params)
    before = generation_samples("m-openai", "vllm")
    results = run(
        openai_collect(llama.capability(TextGenerator), specs, model="m-openai", backend="vllm")
    )
    assert [r.completion_tokens for r in results] == [5, 5]
    change = increase(before, generation_samples("m-openai", "vllm"))
    assert (change["ttft"], change["generated"], change["prompt"]) == (2, 10, len(prompt))
    assert 0 < change["itl"] <= 8
    assert llama.stats()["running"] == llama.stats()["waiting"] == 0


def test_vllm_metrics_reach_the_multiprocess_collector(llama: Any, run: LoopRunner) -> None:
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    from hf_runtime.backends.vllm.metrics import vllm_metrics_text
    from hf_runtime.observability.metrics import metrics_text, prometheus_multiprocess_mode

    run(collect(llama, [1, 2, 3], temperature=0, max_tokens=2))
    assert prometheus_multiprocess_mode(), "tests/conftest.py sets PROMETHEUS_MULTIPROC_DIR"
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # what BentoML's /metrics collects
    text = generate_latest(registry).decode()
    assert 'vllm:prompt_tokens_total{engine="0",model_name="m"}' in text
    assert "vllm:request_success_total" in text
    # Already there: appending them would duplicate the series.
    assert vllm_metrics_text() == ""
    assert "vllm:" not in metrics_text(lambda: [("m", "vllm", llama.stats())], ("vllm:",))


def test_lora_adapter_equals_its_merged_weights_on_huggingface(
    llama: Any, run: LoopRunner, tiny_llama_lora: tuple[Path, Path]
) -> None:
    from tests.loading import load_generative_model

    (adapter,) = llama.adapters
    assert (adapter.name, adapter.task, adapter.ready) == ("sql", "text_generation", True)
    merged_dir = tiny_llama_lora[1]
    config = model_config(merged_dir, backend="huggingface", vllm=None, max_model_len=MAX_MODEL_LEN)
    merged = run(load_generative_model(config, source_for(merged_dir), Task.text_generation))
    try:
        prompt = run(llama.tokenize(PROMPTS[0]))
        with_adapter = ids_of(run(collect(adapter, prompt, temperature=0, max_tokens=16)))
        reference = ids_of(run(collect(merged, prompt, temperature=0, max_tokens=16)))
        base = ids_of(run(collect(llama, prompt, temperature=0, max_tokens=16)))
    finally:
        run(merged.aclose())
    assert with_adapter == reference
    assert with_adapter != base
    view = copy.copy(adapter)
    run(view.aclose())  # closing an adapter leaves the shared engine running
    assert (
        not view.ready
        and adapter.ready
        and llama.ready
        and ids_of(run(collect(llama, prompt, temperature=0, max_tokens=16))) == base
    )


# ---------------------------------------------------------------- through the OpenAI routes


@pytest.fixture(scope="module")
def openai_app(llama: Any) -> Any:
    from hf_runtime.protocols.openai.app import make_app

    return make_app(FakeRegistry([llama, *llama.adapters]))


def test_openai_chat_completion_on_vllm(openai_app: Any, llama: Any, run: LoopRunner) -> None:
    import json

    messages = [{"role": "user", "content": "Hello"}]
    body = {"model": "m", "messages": messages, "temperature": 0, "max_tokens": 12}
    response = run(post_json(openai_app, "/chat/completions", body))
    assert response.status_code == 200, response.text
    answer = response.json()
    prompt = run(llama.render_chat(messages))
    expected = text_of(run(collect(llama, prompt, temperature=0, max_tokens=12)))
    assert answer["choices"][0]["message"]["content"] == expected
    assert answer["usage"]["prompt_tokens"] == len(prompt)

    events = run(stream_events(openai_app, "/chat/completions", {**body, "stream": True}))
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event[len("data: ") :]) for event in events[:-1]]
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )
    assert streamed == expected


def test_openai_completions_fan_out_n_and_route_adapters(openai_app: Any, run: LoopRunner) -> None:
    body = {"prompt": PROMPTS[0], "max_tokens": 8, "temperature": 1.0, "seed": 5, "n": 3}
    base = run(post_json(openai_app, "/completions", {"model": "m", **body}))
    assert base.status_code == 200, base.text
    texts = [choice["text"] for choice in base.json()["choices"]]
    assert len(texts) == 3
    again = run(post_json(openai_app, "/completions", {"model": "m", **body})).json()
    assert [choice["text"] for choice in again["choices"]] == texts  # seeded: repeatable
    greedy = {**body, "temperature": 0, "n": 1}
    adapter = run(post_json(openai_app, "/completions", {"model": "sql", **greedy})).json()
    plain = run(post_json(openai_app, "/completions", {"model": "m", **greedy})).json()
    assert adapter["choices"][0]["text"] != plain["choices"][0]["text"]


def test_openai_errors_keep_their_shape(openai_app: Any, run: LoopRunner) -> None:
    body = {"model": "m", "prompt": PROMPTS[0], "max_tokens": MAX_MODEL_LEN * 2}
    response = run(post_json(openai_app, "/completions", body))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "max_tokens" and str(MAX_MODEL_LEN) in error["message"]


def test_the_reasoning_parser_reaches_the_shared_splitter_on_vllm(
    llama: Any, run: LoopRunner
) -> None:
    """generation.reasoning_parser on the vllm backend: the same GenerativeModel property and
    the same splitter as on huggingface. The tiny model never closes a <think>, so all it says
    is reasoning (vLLM 0.32's deepseek_r1 reading), whole and streamed."""
    import json

    from hf_runtime.protocols.openai.app import make_app
    from hf_runtime.runtime.generative_model import GenerativeModel

    generation = llama.config.generation.model_copy(update={"reasoning_parser": "deepseek_r1"})
    config = llama.config.model_copy(update={"model_name": "thinker", "generation": generation})
    thinker = GenerativeModel(
        config, Task(llama.task), llama._tokenizer, llama.engine, platform=llama.backend,
        chat_template=llama._chat_template, sampling_defaults=llama.sampling_defaults,
    )  # fmt: skip  # a view over the module's engine: never closed here
    assert (thinker.backend, thinker.reasoning_parser) == ("vllm", "deepseek_r1")
    app = make_app(FakeRegistry([thinker]))
    messages = [{"role": "user", "content": "Hello"}]
    body = {"model": "thinker", "messages": messages, "temperature": 0, "max_tokens": 12}
    prompt = run(llama.render_chat(messages))
    expected = text_of(run(collect(llama, prompt, temperature=0, max_tokens=12)))
    message = run(post_json(app, "/chat/completions", body)).json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (expected, "")
    events = run(stream_events(app, "/chat/completions", {**body, "stream": True}))
    deltas = [json.loads(e[len("data: ") :])["choices"] for e in events[:-1]]
    streamed = "".join(c[0]["delta"].get("reasoning_content") or "" for c in deltas if c)
    assert streamed == expected


def test_prefix_caching_is_on_and_its_counters_reach_metrics(llama: Any, run: LoopRunner) -> None:
    """generation.prefix_cache (on by default) switches vLLM's own prefix caching on; its
    token counters (hit rate = vllm:prefix_cache_hits / vllm:prefix_cache_queries) reach the
    collector BentoML's /metrics reads."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    assert llama.engine.engine.vllm_config.cache_config.enable_prefix_caching
    run(collect(llama, [1, 2, 3, 4], temperature=0, max_tokens=2))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    text = generate_latest(registry).decode()
    assert 'vllm:prefix_cache_queries_total{engine="0",model_name="m"}' in text
    assert 'vllm:prefix_cache_hits_total{engine="0",model_name="m"}' in text
