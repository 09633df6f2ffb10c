"""hf-runtime's Prometheus metrics: the /metrics text (parsed as Prometheus parses it), what is
rendered in single- vs multiprocess mode, the token timer, and the generation metrics fed by
the OpenAI layer for a request that went through the gateway and the registry."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hf_runtime.backends.vllm import metrics as vllm_metrics
from hf_runtime.config import ModelConfig
from hf_runtime.observability import metrics
from hf_runtime.observability.metrics import TokenTimer, metrics_text
from hf_runtime.runtime.registry import ModelSlot, Registry
from hf_runtime.types import ModelMetadata
from tests.observability.support import generation_samples, increase, sample
from tests.protocols.openai.fakes import FakeModel, ScriptedGenerator
from tests.served_app import make_served_app

STATS = [
    ("enc", "huggingface", {"running": 2, "waiting": 5, "batches": 7, "rejected_requests": 1}),
    ("gen", "vllm", {"running": 3, "waiting": 0, "rejected_requests": 4, "queue_depth": 9}),
]


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_model_state_parses_with_help_type_and_labels() -> None:
    text = metrics_text(lambda: STATS, ())
    parsed = families(text)
    running = parsed["hf_runtime_requests_running"]
    assert running.type == "gauge" and running.documentation
    assert {(s.labels["model"], s.labels["backend"], s.value) for s in running.samples} == {
        ("enc", "huggingface", 2.0),
        ("gen", "vllm", 3.0),
    }
    waiting = parsed["hf_runtime_requests_waiting"]
    assert {s.labels["model"]: s.value for s in waiting.samples} == {"enc": 5.0, "gen": 0.0}
    rejected = parsed["hf_runtime_rejected_requests"]
    assert rejected.type == "counter"
    assert {s.name for s in rejected.samples} == {"hf_runtime_rejected_requests_total"}
    assert [s.labels["model"] for s in parsed["hf_runtime_batches"].samples] == ["enc"]
    assert parsed["hf_runtime_queue_depth"].type == "gauge"  # an unlisted key: still exported
    assert "# HELP hf_runtime_requests_running Requests" in text
    assert "# TYPE hf_runtime_requests_running gauge" in text
    assert "# HELP hf_runtime_rejected_requests_total Refused with 429" in text
    assert "# TYPE hf_runtime_rejected_requests_total counter" in text


def test_default_registry_families_only_in_single_process_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a BentoML worker (multiprocess mode) BentoML's /metrics already exports the default
    registry: appending it would duplicate every series. Otherwise it must be appended."""
    from prometheus_client import REGISTRY, Counter

    ours = Counter("vllm:test_requests", "test", ["model_name"], registry=REGISTRY)
    other = Counter("unrelated_test_total_things", "test", registry=REGISTRY)
    TokenTimer("single", "vllm", 0.0).tokens(1, 0.5)
    try:
        ours.labels(model_name="m").inc(2)
        other.inc()
        monkeypatch.setattr(metrics, "prometheus_multiprocess_mode", lambda: False)
        parsed = families(metrics_text(lambda: STATS, ("hf_runtime_", "vllm:")))
        assert "vllm:test_requests" in parsed
        assert "hf_runtime_time_to_first_token_seconds" in parsed
        assert "hf_runtime_requests_running" in parsed
        assert not any(name.startswith(("unrelated", "python_")) for name in parsed)
        vllm_only = families(vllm_metrics.vllm_metrics_text())
        assert 'vllm:test_requests_total{model_name="m"} 2.0' in vllm_metrics.vllm_metrics_text()
        # Other tests may have started real vLLM engines in this process: only vllm:* is shown.
        assert "vllm:test_requests" in vllm_only
        assert all(name.startswith("vllm:") for name in vllm_only)

        monkeypatch.setattr(metrics, "prometheus_multiprocess_mode", lambda: True)
        parsed = families(metrics_text(lambda: STATS, ("hf_runtime_", "vllm:")))
        assert "vllm:test_requests" not in parsed
        assert "hf_runtime_time_to_first_token_seconds" not in parsed
        assert "hf_runtime_requests_running" in parsed  # model state: always ours to render
        assert vllm_metrics.vllm_metrics_text() == ""
    finally:
        REGISTRY.unregister(ours)
        REGISTRY.unregister(other)


def test_token_timer_first_token_then_shared_gaps() -> None:
    labels = {"model": "timer", "backend": "huggingface"}
    before = generation_samples(**labels)
    ttft_sum = sample("hf_runtime_time_to_first_token_seconds_sum", **labels)
    timer = TokenTimer("timer", "huggingface", started=10.0)
    timer.prompt(7)
    timer.tokens(0, 10.1)  # a delta without tokens (pending bytes) is not a token
    timer.tokens(1, 10.5)
    timer.tokens(2, 10.7)  # two tokens together: two gaps of 0.1
    change = increase(before, generation_samples(**labels))
    assert change == {"ttft": 1, "itl": 2, "prompt": 7, "generated": 3, "queue": 0}
    ttft = sample("hf_runtime_time_to_first_token_seconds_sum", **labels) - ttft_sum
    assert ttft == pytest.approx(0.5)
    gaps = sample("hf_runtime_inter_token_latency_seconds_bucket", le="0.1", **labels)
    assert gaps == 2


class HFLikeModel(FakeModel):
    """The OpenAI fake model, presenting itself as the huggingface backend."""

    @property
    def backend(self) -> str:
        return "huggingface"

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(self.name, self.task, "huggingface", [], [])


async def test_openai_generation_feeds_token_metrics_labelled_from_the_registry() -> None:
    slot = ModelSlot(ModelConfig(model_name="ctx-model", model_dir="/m"))
    slot.attach(HFLikeModel("ctx-model", generator=ScriptedGenerator()))
    app = make_served_app(Registry([slot]))
    before = generation_samples("ctx-model", "huggingface")
    body = {
        "model": "ctx-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "n": 2,
        "ignore_eos": True,
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 200
    usage = answer.json()["usage"]
    assert usage["completion_tokens"] == 8
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert json.loads(streamed.text.split("data: ")[1])["model"] == "ctx-model"
    change = increase(before, generation_samples("ctx-model", "huggingface"))
    # Two requests x two choices x four tokens; the prompt once per request (as usage counts).
    assert change == {
        "ttft": 4,
        "itl": 12,
        "prompt": 2 * usage["prompt_tokens"],
        "generated": 16,
        "queue": 0,  # fed by the engines, not by the protocol layer
    }
