"""TEI's /embed_sparse over the fake sparse model: the shape checked against TEI's schema, the
request's prompt and truncation passed on, errors in TEI's shape and statuses. The values of a
real SPLADE checkpoint are checked in tests/protocols/test_sparse_embeddings.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.fake_sparse import FAKE_MAX_LENGTH, fake_sparse_vector
from tests.fakes import FakeRegistry, FakeServedModel
from tests.protocols.tei.conftest import assert_tei_error, assert_tei_shape
from tests.served_app import make_served_app


@pytest.fixture
def sparse_tei() -> Iterator[TestClient]:
    registry = FakeRegistry([FakeServedModel("splade", "sparse_embedding"), FakeServedModel("clf")])
    with TestClient(make_served_app(registry), raise_server_exceptions=False) as client:
        yield client


def expected(text: str) -> list[dict[str, float]]:
    vector = fake_sparse_vector([ord(c) for c in text])
    return [{"index": i, "value": v} for i, v in zip(vector.indices, vector.values, strict=True)]


def test_one_text_a_batch_and_token_ids(sparse_tei: TestClient) -> None:
    one = sparse_tei.post("/embed_sparse", json={"inputs": "abca"})
    assert one.status_code == 200, one.text
    assert_tei_shape(one.json(), "EmbedSparseResponse")
    assert one.json() == [expected("abca")]
    batch = sparse_tei.post("/embed_sparse", json={"inputs": ["ab", "c"], "model": "splade"})
    assert batch.json() == [expected("ab"), expected("c")]
    ids = sparse_tei.post("/embed_sparse", json={"inputs": [97, 98]})
    assert ids.json() == [expected("ab")]


def test_prompt_and_truncation_apply(sparse_tei: TestClient) -> None:
    prompted = sparse_tei.post("/embed_sparse", json={"inputs": "ab", "prompt_name": "query"})
    assert prompted.json() == [expected("query: ab")]
    long = "x" * (FAKE_MAX_LENGTH + 1)
    cut = sparse_tei.post("/embed_sparse", json={"inputs": long, "truncate": True})
    assert cut.status_code == 200, cut.text
    refused = sparse_tei.post(
        "/embed_sparse", json={"inputs": long, "truncate": False, "truncation_direction": "Left"}
    )
    assert_tei_error(refused, 413, "validation")


@pytest.mark.parametrize(
    ("body", "status", "error_type", "words"),
    [
        ({"inputs": []}, 400, "empty", "Batch is empty"),
        ({"inputs": "a", "prompt_name": "nope"}, 400, "validation", "nope"),
        ({"inputs": "a", "truncation_direction": "Up"}, 400, "validation", ""),
        ({"inputs": 3}, 400, "validation", ""),
        ({"inputs": ["a"] * 5000}, 413, "validation", "batch size"),
        ({"inputs": "a", "model": "clf"}, 424, "backend", "not a sparse embedding model"),
        ({"inputs": "a", "model": "nope"}, 404, "validation", ""),
    ],
)
def test_bad_requests_are_tei_errors(
    sparse_tei: TestClient, body: dict[str, object], status: int, error_type: str, words: str
) -> None:
    assert_tei_error(sparse_tei.post("/embed_sparse", json=body), status, error_type, words)


def test_a_dense_only_server_refuses_embed_sparse(tei: TestClient) -> None:
    response = tei.post("/embed_sparse", json={"inputs": "a", "model": "embed"})
    assert_tei_error(response, 424, "backend", "(text_embedding) is not a sparse embedding model")


def test_info_says_splade(sparse_tei: TestClient) -> None:
    info = sparse_tei.get("/info", params={"model": "splade"})
    assert info.status_code == 200, info.text
    assert_tei_shape(info.json(), "Info")
    assert info.json()["model_type"] == {"embedding": {"pooling": "splade"}}
