"""Rerank and score against a real `bentoml serve`: the tiny cross-encoder (inferred as a
rerank model) and MiniLM (cosine), on every path, plus KServe V1/V2 text pairs, with plain
HTTP calls as curl would send them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
]


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def reference_scores(path: Path, query: str, documents: list[str]) -> list[float]:
    """sigmoid(model(**tokenizer(query, doc)).logits), computed here with transformers."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    with torch.no_grad():
        logits = [
            model(**tokenizer(query, d, return_tensors="pt")).logits.item() for d in documents
        ]
    return [float(1 / (1 + np.exp(-logit))) for logit in logits]


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank", "/openai/v1/rerank"])
def test_rerank_on_every_path(server_url: str, tiny_models: dict[str, Path], path: str) -> None:
    body = ok(post(server_url, path, {"model": "reranker", "query": QUERY, "documents": DOCUMENTS}))
    expected = reference_scores(tiny_models["bert-cross-encoder"], QUERY, DOCUMENTS)
    results = body["results"]
    assert [r["index"] for r in results] == list(np.argsort(expected)[::-1])
    for result in results:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert result["document"]["text"] == DOCUMENTS[result["index"]]
    assert body["model"] == "reranker" and body["usage"]["total_tokens"] > 0


def test_cohere_style_body(server_url: str) -> None:
    body = {
        "model": "reranker",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "return_documents": False,
        "max_tokens_per_doc": 512,  # Cohere's: accepted, ignored
    }
    results = ok(post(server_url, "/v2/rerank", body))["results"]
    assert len(results) == 2 and all(set(r) == {"index", "relevance_score"} for r in results)
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]


def test_minilm_puts_paris_first_and_scores_by_its_own_embeddings(server_url: str) -> None:
    body = {"model": "minilm", "query": QUERY, "documents": DOCUMENTS}
    results = ok(post(server_url, "/v1/rerank", body))["results"]
    assert results[0]["index"] == 1 and results[0]["document"]["text"].startswith("Paris")
    embedded = ok(
        post(server_url, "/v1/embeddings", {"model": "minilm", "input": [QUERY, *DOCUMENTS]})
    )
    vectors = np.array([d["embedding"] for d in embedded["data"]], np.float64)
    cosines = vectors[1:] @ vectors[0]
    for result in results:
        assert result["relevance_score"] == pytest.approx(cosines[result["index"]], abs=1e-5)


def test_score_1_to_n_and_n_to_n(server_url: str, tiny_models: dict[str, Path]) -> None:
    one_to_n = ok(
        post(server_url, "/score", {"model": "reranker", "text_1": QUERY, "text_2": DOCUMENTS})
    )
    expected = reference_scores(tiny_models["bert-cross-encoder"], QUERY, DOCUMENTS)
    assert [d["score"] for d in one_to_n["data"]] == pytest.approx(expected, abs=1e-5)
    pairwise = {"model": "reranker", "text_1": [QUERY, QUERY], "text_2": DOCUMENTS[:2]}
    data = ok(post(server_url, "/v1/score", pairwise))["data"]
    assert [d["score"] for d in data] == pytest.approx(expected[:2], abs=1e-5)


def test_kserve_v1_and_v2_pairs(server_url: str, tiny_models: dict[str, Path]) -> None:
    expected = reference_scores(tiny_models["bert-cross-encoder"], QUERY, DOCUMENTS)
    instances = [{"text": QUERY, "text_pair": d} for d in DOCUMENTS]
    v1 = ok(post(server_url, "/v1/models/reranker:predict", {"instances": instances}))
    assert v1["predictions"] == pytest.approx(expected, abs=1e-5)

    def tensor(name: str, data: list[str]) -> dict[str, Any]:
        return {"name": name, "shape": [len(data)], "datatype": "BYTES", "data": data}

    request = {"inputs": [tensor("text", [QUERY] * 3), tensor("text_pair", DOCUMENTS)]}
    (output,) = ok(post(server_url, "/v2/models/reranker/infer", request))["outputs"]
    assert (output["datatype"], output["shape"]) == ("FP64", [3])
    assert output["data"] == pytest.approx(expected, abs=1e-5)
    metadata = ok(httpx.get(f"{server_url}/v2/models/reranker", timeout=10))
    assert [i["name"] for i in metadata["inputs"]] == ["text", "text_pair"]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/rerank", {"model": "reranker", "query": QUERY, "documents": []}, 400, "documents"),
        ("/v2/rerank", {"model": "reranker", "documents": ["a"]}, 400, "query"),
        (
            "/rerank",
            {"model": "reranker", "query": "q", "documents": ["a"], "top_n": 0},
            400,
            "top_n",
        ),
        (
            "/v1/rerank",
            {"model": "reranker", "query": "q", "documents": ["a", 3]},
            400,
            "documents",
        ),
        (
            "/v1/rerank",
            {"model": "reranker", "query": "q", "documents": ["a"] * 2049},
            400,
            "documents",
        ),
        ("/v1/rerank", {"model": "cls", "query": "q", "documents": ["a"]}, 400, "model"),
        ("/score", {"model": "nope", "text_1": "q", "text_2": "a"}, 404, "model"),
    ],
)
def test_bad_requests_answer_in_openai_shape(
    server_url: str, path: str, body: dict[str, Any], status: int, param: str
) -> None:
    response = post(server_url, path, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (status, param), error


def test_the_rerank_model_is_listed_and_refuses_plain_texts(server_url: str) -> None:
    listed = ok(httpx.get(f"{server_url}/v1/models", timeout=10))
    assert "reranker" in listed["models"]
    refused = post(server_url, "/v1/models/reranker:predict", {"instances": ["a text"]})
    assert refused.status_code == 400 and "text_pair" in refused.json()["error"]


def test_vllm_classify_and_pooling_as_a_vllm_client_calls_them(server_url: str) -> None:
    """vLLM's pooling API at the root, with plain httpx: /classify's probabilities are KServe
    V1's (rounded there), /pooling's vectors /v1/embeddings', refusals in vLLM's shape."""
    classified = ok(post(server_url, "/classify", {"model": "cls", "input": DOCUMENTS}))
    assert classified["id"].startswith("classify-") and classified["object"] == "list"
    v1 = ok(post(server_url, "/v1/models/cls:predict", {"instances": DOCUMENTS}))
    for predicted, entry in zip(v1["predictions"], classified["data"], strict=True):
        assert entry["num_classes"] == 2 and entry["label"] in ("NEGATIVE", "POSITIVE")
        assert [predicted[str(j)] for j in range(2)] == [round(p, 4) for p in entry["probs"]]
    pooled = ok(post(server_url, "/pooling", {"model": "minilm", "input": [QUERY]}))
    embedded = ok(post(server_url, "/v1/embeddings", {"model": "minilm", "input": [QUERY]}))
    assert pooled["data"][0]["object"] == "pooling"
    assert pooled["data"][0]["data"] == embedded["data"][0]["embedding"]
    refused = post(server_url, "/pooling", {"model": "minilm", "input": "a", "dimensions": 8})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "dimensions"
    assert post(server_url, "/v1/classify", {"model": "cls", "input": "a"}).status_code == 404


def test_tei_rerank_and_predict(server_url: str, tiny_models: dict[str, Path]) -> None:
    """TEI's bodies on the root /rerank and on /predict, as a TEI client sends them."""
    body = {"model": "reranker", "query": QUERY, "texts": DOCUMENTS, "return_text": True}
    ranks = ok(post(server_url, "/rerank", body))
    expected = reference_scores(tiny_models["bert-cross-encoder"], QUERY, DOCUMENTS)
    assert [r["index"] for r in ranks] == list(np.argsort(expected)[::-1])
    for rank in ranks:
        assert rank["score"] == pytest.approx(expected[rank["index"]], abs=1e-5)
        assert rank["text"] == DOCUMENTS[rank["index"]]
    predicted = ok(
        post(server_url, "/predict", {"model": "reranker", "inputs": [QUERY, DOCUMENTS[1]]})
    )
    assert predicted == [{"score": pytest.approx(expected[1], abs=1e-5), "label": "LABEL_0"}]
    refused = post(server_url, "/rerank", {"model": "reranker", "query": QUERY, "texts": []})
    assert refused.status_code == 400 and refused.json()["error_type"] == "empty"
