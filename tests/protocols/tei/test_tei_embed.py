"""TEI's /embed, /embed_all, /similarity and /info over the fake models: shapes checked
against TEI's OpenAPI schemas, errors in TEI's shape and statuses."""

from __future__ import annotations

import numpy as np
from starlette.testclient import TestClient

from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.types import Truncation
from tests.fakes import FakeRegistry, fake_embedding
from tests.protocols.tei.conftest import assert_tei_error, assert_tei_shape
from tests.served_app import make_served_app


def test_embed_one_text_and_a_batch(tei: TestClient) -> None:
    one = tei.post("/embed", json={"inputs": "ab"})
    assert one.status_code == 200, one.text
    assert_tei_shape(one.json(), "EmbedResponse")
    assert one.json() == [fake_embedding([97, 98])]
    batch = tei.post("/embed", json={"inputs": ["ab", "c"], "normalize": True})
    assert batch.json() == [fake_embedding([97, 98]), fake_embedding([99])]
    ids = tei.post("/embed", json={"inputs": [1, 2, 3]})
    assert ids.json() == [fake_embedding([1, 2, 3])]


def test_embed_passes_truncation_and_normalize(tei: TestClient, registry: FakeRegistry) -> None:
    body = {"inputs": "ab", "truncate": True, "truncation_direction": "Left", "normalize": False}
    assert tei.post("/embed", json=body).status_code == 200
    assert registry.get("embed").embed_options[-1] == (Truncation(True, "left"), False)
    assert tei.post("/embed", json={"inputs": "ab"}).status_code == 200
    assert registry.get("embed").embed_options[-1] == (Truncation(None, "right"), True)


def test_embed_all_and_similarity(tei: TestClient) -> None:
    states = tei.post("/embed_all", json={"inputs": ["ab"]})
    assert states.status_code == 200, states.text
    assert_tei_shape(states.json(), "EmbedAllResponse")
    assert states.json() == [[fake_embedding([97]), fake_embedding([98])]]
    body = {"inputs": {"source_sentence": "ab", "sentences": ["ab", "c"]}}
    scores = tei.post("/similarity", json=body)
    assert scores.status_code == 200, scores.text
    assert_tei_shape(scores.json(), "SimilarityResponse")
    expected = [
        float(np.dot(fake_embedding([97, 98]), fake_embedding(s))) for s in ([97, 98], [99])
    ]
    assert np.allclose(scores.json(), expected)


def test_info_describes_the_model(tei: TestClient) -> None:
    info = tei.get("/info", params={"model": "embed"})
    assert info.status_code == 200, info.text
    assert_tei_shape(info.json(), "Info")
    assert info.json()["model_type"] == {"embedding": {"pooling": "mean"}}
    reranker = tei.get("/info", params={"model": "rerank"}).json()
    assert reranker["model_type"] == {
        "reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}
    }
    assert_tei_error(tei.get("/info"), 400, "validation", "several models are served")
    assert_tei_error(tei.get("/info", params={"model": "nope"}), 404, "validation")


def test_bad_requests_get_tei_errors(tei: TestClient) -> None:
    assert_tei_error(tei.post("/embed", json={"inputs": []}), 400, "empty", "Batch is empty")
    assert_tei_error(tei.post("/embed", json={"inputs": 5}), 400, "validation", "inputs")
    assert_tei_error(tei.post("/embed", json={}), 400, "validation", "inputs")
    direction = {"inputs": "a", "truncation_direction": "Up"}
    assert_tei_error(tei.post("/embed", json=direction), 400, "validation", "truncation")
    assert_tei_error(
        tei.post("/embed", content=b"{", headers={"content-type": "application/json"}),
        400,
        "validation",
        "JSON",
    )
    assert_tei_error(tei.post("/embed", json={"inputs": ["a"] * 2049}), 413, "validation")
    not_embedding = tei.post("/embed", json={"inputs": "a", "model": "clf"})
    assert_tei_error(not_embedding, 424, "backend", "not an embedding model")
    assert_tei_error(tei.post("/embed", json={"inputs": "a", "model": "nope"}), 404, "validation")
    busy = tei.post("/embed", json={"inputs": "a", "model": "busy"})
    assert busy.status_code in (424, 429)
    empty = {"inputs": {"source_sentence": "a", "sentences": []}}
    assert_tei_error(tei.post("/similarity", json=empty), 400, "empty")
    prompt = {"inputs": "a", "prompt_name": "nope"}
    assert_tei_error(tei.post("/embed", json=prompt), 400, "validation", "prompt_name")


def test_the_gateway_answers_tei_routes_in_tei_shape(registry: FakeRegistry) -> None:
    """API keys, the body limit and the drain, on TEI's paths, in TEI's error body."""
    draining = False
    settings = GatewaySettings(api_keys=("k",), max_request_bytes=200, is_draining=lambda: draining)
    with TestClient(make_served_app(registry, settings), raise_server_exceptions=False) as tei:
        assert_tei_error(tei.post("/embed", json={"inputs": "a"}), 401, "validation")
        keyed = {"Authorization": "Bearer k"}
        assert tei.post("/embed", json={"inputs": "a"}, headers=keyed).status_code == 200
        big = tei.post("/embed", json={"inputs": "a" * 500}, headers=keyed)
        assert_tei_error(big, 413, "validation", "max_request_bytes")
        draining = True
        assert_tei_error(tei.get("/info", headers=keyed), 503, "unhealthy", "shutting down")
