"""KServe V1 and V2 against a real `bentoml serve`, with httpx and Triton's client."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

SENTENCE = "This is an example sentence."


def reference_minilm_embedding(minilm_dir: Path, text: str) -> np.ndarray:
    """sentence-transformers' recipe computed directly: mean pooling, then L2 normalisation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    batch = tokenizer([text], return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)[0].numpy()


def test_health_and_listing(server_url: str) -> None:
    assert httpx.get(f"{server_url}/livez").status_code == 200
    assert httpx.get(f"{server_url}/readyz").status_code == 200
    assert httpx.get(f"{server_url}/v2/health/ready").status_code == 200
    body = httpx.get(f"{server_url}/v1/models").json()
    assert set(body["models"]) == {"minilm", "smollm2", "cls", "ner", "mlm", "reranker"}
    assert body["object"] == "list" and {m["id"] for m in body["data"]} == set(body["models"])
    assert httpx.get(f"{server_url}/v1/models/cls").json()["ready"] is True


def test_v1_minilm_is_the_real_embedding(server_url: str, minilm_dir: Path) -> None:
    response = httpx.post(
        f"{server_url}/v1/models/minilm:predict", json={"instances": [SENTENCE]}, timeout=30
    )
    assert response.status_code == 200, response.text
    (vector,) = response.json()["predictions"]
    expected = reference_minilm_embedding(minilm_dir, SENTENCE)
    assert len(vector) == 384
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_v2_equals_v1(server_url: str) -> None:
    texts = ["hello world", "the movie was good"]
    v1 = httpx.post(f"{server_url}/v1/models/cls:predict", json={"instances": texts}).json()
    v2 = httpx.post(
        f"{server_url}/v2/models/cls/infer",
        json={"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": texts}]},
    ).json()
    assert v2["model_name"] == "cls"
    (output,) = v2["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [2]
    # KServe's quirk: V2 carries str(dict) where V1 carries the dict (int keys as strings).
    assert [ast.literal_eval(item) for item in output["data"]] == [
        {int(k): v for k, v in p.items()} for p in v1["predictions"]
    ]


def test_offsets_output_v1(server_url: str) -> None:
    body = httpx.post(
        f"{server_url}/v1/models/ner:predict", json={"instances": ["hello world"]}
    ).json()
    assert "predictions" in body
    assert body["outputs"][0]["name"] == "offset_mapping"
    assert body["outputs"][0]["datatype"] == "INT64"


def test_tritonclient_against_the_real_server(server_url: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlm")
    metadata = client.get_model_metadata("minilm")
    assert metadata["inputs"] and metadata["outputs"]
    for binary in (False, True):
        text = np.array([SENTENCE.encode()], dtype=np.object_)
        infer_input = triton.InferInput("input-0", [1], "BYTES")
        infer_input.set_data_from_numpy(text, binary_data=binary)
        output = triton.InferRequestedOutput("output-0", binary_data=binary)
        result = client.infer("minilm", [infer_input], outputs=[output])
        assert result.as_numpy("output-0").shape == (1, 384)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/minilm:predict", {"instances": []}),
        ("/v1/models/minilm:predict", {"nothing": 1}),
        ("/v1/models/mlm:predict", {"instances": ["no mask token here"]}),
        ("/v2/models/minilm/infer", {"inputs": []}),
        ("/v2/models/minilm/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP99"}]}),
    ],
)
def test_bad_input_is_a_kserve_4xx(server_url: str, path: str, body: dict[str, object]) -> None:
    response = httpx.post(f"{server_url}{path}", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["error"], str)


def test_unknown_model_and_malformed_json(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v1/models/nope:predict", json={"instances": ["a"]})
    assert response.status_code == 404
    assert response.json() == {"error": "Model with name nope does not exist."}
    response = httpx.post(
        f"{server_url}/v1/models/minilm:predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and "error" in response.json()


def test_generative_model_on_v1_is_a_400(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v1/models/smollm2:predict", json={"instances": ["hi"]})
    assert response.status_code == 400
    assert "completions" in response.json()["error"]


def metric(text: str, name: str, model: str) -> float:
    """A model's value of a gauge or counter (`name` without a counter's `_total`)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and sample.labels.get("model") == model:
                return sample.value
    raise AssertionError(f"{name} for {model} not in /metrics")


def test_concurrent_requests_share_forward_passes(server_url: str) -> None:
    """Shown by counters on /metrics, not by timing."""
    texts = [f"sentence number {i} for the batcher" for i in range(32)]

    def one(text: str) -> int:
        body = {"instances": [text]}
        return httpx.post(f"{server_url}/v1/models/minilm:predict", json=body).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, texts)) == {200}
    text = httpx.get(f"{server_url}/metrics").text
    assert metric(text, "hf_runtime_largest_batch", "minilm") >= 2
    assert metric(text, "hf_runtime_batches", "minilm") < metric(text, "hf_runtime_items", "minilm")


def test_concurrent_generations_share_decoding_steps(server_url: str) -> None:
    def one(i: int) -> int:
        body = {"model": "smollm2", "prompt": f"Count to {i}:", "max_tokens": 12, "temperature": 0}
        return httpx.post(f"{server_url}/v1/completions", json=body, timeout=120).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(one, range(4))) == {200}
    text = httpx.get(f"{server_url}/metrics").text
    assert metric(text, "hf_runtime_largest_decode_batch", "smollm2") >= 2
    steps = metric(text, "hf_runtime_decode_steps", "smollm2")
    assert metric(text, "hf_runtime_decoded_sequences", "smollm2") > steps


def test_metrics_exposes_bentoml_and_batching_counters(server_url: str) -> None:
    for _ in range(3):
        httpx.post(f"{server_url}/v1/models/minilm:predict", json={"instances": ["x"]})
    text = httpx.get(f"{server_url}/metrics").text
    assert "bentoml_service_request_total" in text
    assert "hf_runtime_" in text and 'model="minilm"' in text


def test_a_repeated_system_prompt_hits_the_prefix_cache(server_url: str) -> None:
    """The default config caches prompt prefixes: the same chat twice, the second prefilled
    mostly from the cache, answers the same (greedy); /metrics counts the hit."""
    system = "You are a terse assistant for a travel agency. " * 8
    body = {
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_tokens": 12,
        "temperature": 0,
    }
    before = httpx.get(f"{server_url}/metrics").text
    answers = [
        httpx.post(f"{server_url}/v1/chat/completions", json=body, timeout=120).json()
        for _ in range(2)
    ]
    texts = [answer["choices"][0]["message"]["content"] for answer in answers]
    assert texts[0] == texts[1] and texts[0]
    text = httpx.get(f"{server_url}/metrics").text
    hits = metric(text, "hf_runtime_prefix_cache_hits", "smollm2")
    assert hits - metric(before, "hf_runtime_prefix_cache_hits", "smollm2") >= 80
    assert 0 < metric(text, "hf_runtime_prefix_cache_hit_rate", "smollm2") <= 1
