"""TEI's /predict, /rerank (TEI's body), /tokenize (TEI's body) and /decode over the fakes,
and the root paths telling TEI's bodies from vLLM's."""

from __future__ import annotations

from starlette.testclient import TestClient

from hf_runtime.types import TextPair, Truncation
from tests.fake_scorer import fake_relevance
from tests.fakes import FakeRegistry, fake_probabilities
from tests.protocols.openai.helpers import assert_error
from tests.protocols.tei.conftest import assert_tei_error, assert_tei_shape


def test_predict_a_text_a_pair_and_a_batch(tei: TestClient, registry: FakeRegistry) -> None:
    one = tei.post("/predict", json={"inputs": "hello", "model": "clf"})
    assert one.status_code == 200, one.text
    assert_tei_shape(one.json(), "PredictResponse")
    negative, positive = fake_probabilities("hello").values()
    assert one.json() == [
        {"score": negative, "label": "NEGATIVE"},
        {"score": positive, "label": "POSITIVE"},
    ]
    pair = tei.post("/predict", json={"inputs": ["a", "b"], "model": "clf"})
    assert len(pair.json()) == 2 and isinstance(pair.json()[0], dict)  # one pair, not a batch
    body = {"inputs": [["a", "b"], ["c"], "d"], "model": "clf", "truncate": True}
    batch = tei.post("/predict", json=body)
    assert batch.status_code == 200, batch.text
    assert_tei_shape(batch.json(), "PredictResponse")
    assert len(batch.json()) == 3 and all(len(row) == 2 for row in batch.json())
    inputs, raw, truncation = registry.get("clf").classify_calls[-1]
    assert inputs == [TextPair("a", "b"), "c", "d"] and not raw
    assert truncation == Truncation(True, "right")
    for row in batch.json():  # best first
        assert row[0]["score"] >= row[1]["score"]


def test_predict_raw_scores_and_errors(tei: TestClient) -> None:
    raw = tei.post("/predict", json={"inputs": "hello", "model": "clf", "raw_scores": True})
    assert raw.json()[0]["score"] > 1  # a logit, not a probability
    not_classifier = tei.post("/predict", json={"inputs": "a", "model": "embed"})
    assert_tei_error(not_classifier, 424, "backend", "not a sequence classification model")
    assert_tei_error(tei.post("/predict", json={"inputs": [], "model": "clf"}), 400, "empty")
    bad = tei.post("/predict", json={"inputs": [["a", "b", "c"]], "model": "clf"})
    assert_tei_error(bad, 400, "validation", "inputs")
    too_many = tei.post("/predict", json={"inputs": ["x"] * 65, "model": "clf"})
    assert_tei_error(too_many, 413, "validation", "batch size 65")


def test_tei_rerank_on_the_shared_path(tei: TestClient) -> None:
    body = {"query": "deep learning", "texts": ["nope", "deep learning"], "model": "rerank"}
    ranked = tei.post("/rerank", json={**body, "return_text": True})
    assert ranked.status_code == 200, ranked.text
    assert_tei_shape(ranked.json(), "RerankResponse")
    expected = [fake_relevance("deep learning", t) for t in body["texts"]]
    assert ranked.json() == [
        {"index": 1, "score": expected[1], "text": "deep learning"},
        {"index": 0, "score": expected[0], "text": "nope"},
    ]
    plain = tei.post("/rerank", json=body).json()
    assert all("text" not in rank for rank in plain)
    assert_tei_error(tei.post("/rerank", json={**body, "texts": []}), 400, "empty")
    assert_tei_error(tei.post("/rerank", json={**body, "texts": "x"}), 400, "validation")
    multi = tei.post("/rerank", json={**body, "model": "clf"})
    assert_tei_error(multi, 424, "backend", "not a re-ranker")
    # vLLM's body on the same path, and one of neither shape.
    vllm = tei.post("/rerank", json={"model": "rerank", "query": "q", "documents": ["a"]})
    assert vllm.status_code == 200 and "results" in vllm.json()
    assert_error(tei.post("/rerank", json={"query": "q"}), 400, "documents", "texts")


def test_tei_tokenize_and_decode(tei: TestClient) -> None:
    tokens = tei.post("/tokenize", json={"inputs": ["hé"], "model": "embed"})
    assert tokens.status_code == 200, tokens.text
    assert_tei_shape(tokens.json(), "TokenizeResponse")
    (first,) = tokens.json()
    assert first[0] == {"id": 256, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert first[1] == {"id": 104, "text": "h", "special": False, "start": 0, "stop": 1}
    assert first[2]["text"] == "é" and (first[2]["start"], first[2]["stop"]) == (1, 3)  # bytes
    bare = tei.post(
        "/tokenize", json={"inputs": "h", "add_special_tokens": False, "model": "embed"}
    )
    assert [t["id"] for t in bare.json()[0]] == [104]
    vllm = tei.post("/tokenize", json={"prompt": "h", "model": "embed"})
    assert vllm.json()["tokens"] == [256, 104, 257]
    assert_error(tei.post("/tokenize", json={"model": "embed"}), 400, "prompt", "inputs")
    prompt = {"inputs": "h", "prompt_name": "query", "model": "embed"}
    assert_tei_error(tei.post("/tokenize", json=prompt), 400, "validation", "prompt_name")

    decoded = tei.post("/decode", json={"ids": [256, 104, 257], "model": "embed"})
    assert decoded.status_code == 200 and decoded.json() == ["h"]
    assert_tei_shape(decoded.json(), "DecodeResponse")
    kept = {"ids": [[256, 104, 257], [105]], "skip_special_tokens": False, "model": "embed"}
    assert tei.post("/decode", json=kept).json() == ["[CLS]h[SEP]", "i"]
    bad = tei.post("/decode", json={"ids": [99999], "model": "embed"})
    assert_tei_error(bad, 400, "validation", "outside the vocabulary")
    assert_tei_error(tei.post("/decode", json={"ids": [-1], "model": "embed"}), 400, "validation")
