"""Rerank and score over fake models, through every path the service mounts them at (the
served app: every protocol app behind the Gateway, mounted as BentoML mounts them), and text
pairs through KServe V1 and V2."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from hf_runtime.protocols.gateway import GatewaySettings, Surface, surface_for
from tests.fake_scorer import FAKE_MAX_PAIRS, fake_relevance
from tests.fakes import FakeRegistry, fake_embedding
from tests.protocols.conftest import make_fake_registry
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

RERANK_PATHS = ["/v1/rerank", "/openai/v1/rerank", "/rerank", "/v2/rerank"]
SCORE_PATHS = ["/v1/score", "/openai/v1/score", "/score"]
QUERY = "what is the capital of france"
DOCUMENTS = ["berlin is in germany", "paris is the capital of france", "the capital is paris"]
KEY = "scoring-test-key-01"


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    app = make_served_app(registry)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def cosine(a: str, b: str) -> float:
    left, right = (fake_embedding([ord(c) for c in text]) for text in (a, b))
    return sum(x * y for x, y in zip(left, right, strict=True))


# ---------------------------------------------------------------- rerank


@pytest.mark.parametrize("path", RERANK_PATHS)
def test_rerank_ranks_every_document(client: TestClient, path: str) -> None:
    response = client.post(path, json={"model": "rerank", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "model", "usage", "results"} and body["model"] == "rerank"
    assert body["id"].startswith("rerank-")
    expected = [fake_relevance(QUERY, d) for d in DOCUMENTS]
    order = sorted(range(3), key=lambda i: -expected[i])
    assert [r["index"] for r in body["results"]] == order == [1, 2, 0]
    for result in body["results"]:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]])
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
    tokens = sum(len(QUERY) + len(d) + 3 for d in DOCUMENTS)  # the fake's count
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_rerank_top_n_and_return_documents(client: TestClient) -> None:
    body = {"model": "rerank", "query": QUERY, "documents": DOCUMENTS}
    top = client.post("/v1/rerank", json={**body, "top_n": 2, "return_documents": False}).json()
    assert [r["index"] for r in top["results"]] == [1, 2]
    assert all(set(r) == {"index", "relevance_score"} for r in top["results"])
    every = client.post("/rerank", json={**body, "top_n": 10}).json()  # more than there are
    assert [r["index"] for r in every["results"]] == [1, 2, 0]


def test_rerank_ties_keep_the_documents_order(client: TestClient) -> None:
    documents = ["same words", "same words", "other"]
    body = {"model": "rerank", "query": "same", "documents": documents}
    results = client.post("/v1/rerank", json=body).json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]


def test_cohere_style_body(client: TestClient) -> None:
    """Cohere's fields beside the shared ones are accepted (and ignored)."""
    body = {
        "model": "rerank",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 1,
        "max_tokens_per_doc": 512,
        "rank_fields": ["text"],
    }
    response = client.post("/v2/rerank", json=body)
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == [1]


def test_an_embedding_model_reranks_by_cosine(client: TestClient, registry: FakeRegistry) -> None:
    body = {"model": "embed", "query": QUERY, "documents": DOCUMENTS}
    results = client.post("/v1/rerank", json=body).json()["results"]
    for result in results:
        assert result["relevance_score"] == pytest.approx(cosine(QUERY, DOCUMENTS[result["index"]]))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # The query is one text against every document (1:N), not repeated per document.
    assert registry.get("embed").scorer.calls == [([QUERY], DOCUMENTS)]


def test_model_may_be_omitted_when_one_model_is_served() -> None:
    from tests.fakes import FakeServedModel

    app = make_served_app(FakeRegistry([FakeServedModel("only", "rerank")]))
    with TestClient(app) as client:
        response = client.post("/rerank", json={"query": "a", "documents": ["a b"]})
    assert response.status_code == 200 and response.json()["model"] == "only"


# ---------------------------------------------------------------- score


@pytest.mark.parametrize("path", SCORE_PATHS)
@pytest.mark.parametrize(
    ("text_1", "text_2", "pairs"),
    [
        ("a b", "b c", [("a b", "b c")]),  # 1:1
        ("a b", ["b", "c", "a b"], [("a b", "b"), ("a b", "c"), ("a b", "a b")]),  # 1:N
        (["a"], ["a", "b"], [("a", "a"), ("a", "b")]),  # 1:N with a list of one
        (["a", "b"], ["b", "b"], [("a", "b"), ("b", "b")]),  # N:N
    ],
)
def test_score_pairs(
    client: TestClient, path: str, text_1: Any, text_2: Any, pairs: list[tuple[str, str]]
) -> None:
    response = client.post(path, json={"model": "rerank", "text_1": text_1, "text_2": text_2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "rerank"
    assert body["id"].startswith("score-") and isinstance(body["created"], int)
    assert [d["index"] for d in body["data"]] == list(range(len(pairs)))
    assert all(d["object"] == "score" for d in body["data"])
    expected = [fake_relevance(a, b) for a, b in pairs]
    assert [d["score"] for d in body["data"]] == pytest.approx(expected)
    assert body["usage"]["total_tokens"] == sum(len(a) + len(b) + 3 for a, b in pairs)


def test_embedding_model_scores_by_cosine(client: TestClient) -> None:
    body = {"model": "embed", "text_1": ["ab", "cd"], "text_2": ["ab", "ce"]}
    data = client.post("/score", json=body).json()["data"]
    assert [d["score"] for d in data] == pytest.approx([cosine("ab", "ab"), cosine("cd", "ce")])
    assert data[0]["score"] == pytest.approx(1.0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank"])
@pytest.mark.parametrize(
    ("body", "status", "param", "contains"),
    [
        ({"documents": ["a"]}, 400, "query", "query: Field required"),
        ({"query": "q", "documents": []}, 400, "documents", "must not be empty"),
        ({"query": "q"}, 400, "documents", "documents: Field required"),
        ({"query": "q", "documents": ["a", 7]}, 400, "documents", "documents.1"),
        ({"query": "q", "documents": [{"text": "a"}]}, 400, "documents", "valid string"),
        ({"query": 3, "documents": ["a"]}, 400, "query", "valid string"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n", "at least 1"),
        ({"query": "q", "documents": ["a"], "top_n": -2}, 400, "top_n", "at least 1"),
        (
            {"query": "q", "documents": ["d"] * (FAKE_MAX_PAIRS + 1)},
            400,
            "documents",
            f"at most {FAKE_MAX_PAIRS} per request",
        ),
        ({"model": "nope", "query": "q", "documents": ["a"]}, 404, "model", "does not exist"),
    ],
)
def test_bad_rerank_requests(
    client: TestClient, path: str, body: dict[str, Any], status: int, param: str, contains: str
) -> None:
    response = client.post(path, json={"model": "rerank", **body})
    assert_error(response, status, param, contains)


@pytest.mark.parametrize(
    ("body", "param", "contains"),
    [
        ({"text_2": "a"}, "text_1", "Field required"),
        ({"text_1": [], "text_2": "a"}, "text_1", "empty"),
        ({"text_1": "a", "text_2": []}, "text_2", "empty"),
        ({"text_1": ["a", "b"], "text_2": ["a"]}, "text_2", "1:1, 1:N"),
        ({"text_1": ["a", "b"], "text_2": "a"}, "text_2", "1:1, 1:N"),
        ({"text_1": "a", "text_2": [1]}, "text_2", "valid string"),
        ({"text_1": "a", "text_2": ["b"] * (FAKE_MAX_PAIRS + 1)}, "text_2", "at most"),
    ],
)
def test_bad_score_requests(
    client: TestClient, body: dict[str, Any], param: str, contains: str
) -> None:
    assert_error(client.post("/score", json={"model": "rerank", **body}), 400, param, contains)


@pytest.mark.parametrize(
    ("model", "path", "contains"),
    [
        ("clf", "/v1/rerank", "use /v1/models/clf:predict (KServe V1)"),
        ("gpt", "/v1/score", "use /v1/completions or /v1/chat/completions"),
        ("gpt", "/openai/v1/rerank", "use /openai/v1/completions"),
        ("ner", "/v2/rerank", "/v1/models/ner:predict"),
    ],
)
def test_models_without_a_scorer_name_their_routes(
    client: TestClient, model: str, path: str, contains: str
) -> None:
    body = {"model": model, "query": "q", "documents": ["a"], "text_1": "q", "text_2": "a"}
    error = assert_error(client.post(path, json=body), 400, "model", contains)
    assert "does not support" in error["message"]


def test_a_rerank_model_names_its_routes_elsewhere(client: TestClient) -> None:
    embeddings = client.post("/v1/embeddings", json={"model": "rerank", "input": "a"})
    assert_error(embeddings, 400, "model", "use /v1/rerank or /v1/score")
    chat = {"model": "rerank", "messages": [{"role": "user", "content": "hi"}]}
    assert_error(client.post("/openai/v1/chat/completions", json=chat), 400, "model", "rerank")


def test_loading_and_failing_models(client: TestClient, registry: FakeRegistry) -> None:
    from hf_runtime.errors import Overloaded

    registry.get("rerank").ready = False
    body = {"model": "rerank", "query": "q", "documents": ["a"]}
    assert_error(client.post("/v2/rerank", json=body), 503, "model", "not ready")
    registry.get("rerank").ready = True
    registry.get("rerank").fail_with = Overloaded("queue is full")
    assert_error(client.post("/rerank", json=body), 429, None, "queue is full")


def test_wrong_method_is_405_and_other_v2_paths_stay_v2(client: TestClient) -> None:
    wrong = client.get("/v2/rerank")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == 405
    # Only the rerank route itself is OpenAI's: the rest of "/v2" keeps V2's shape.
    unknown = client.post("/v2/rerankers", json={})
    assert unknown.status_code == 404 and isinstance(unknown.json()["error"], str)


def test_scoring_paths_belong_to_the_openai_surface() -> None:
    for path in [*RERANK_PATHS, *SCORE_PATHS, "/scoring/openapi.json"]:
        assert surface_for(path) is Surface.OPENAI, path
    assert surface_for("/v2/models/m/infer") is Surface.KSERVE_V2


def test_scoring_paths_need_the_api_key(registry: FakeRegistry) -> None:
    app = make_served_app(registry, GatewaySettings(api_keys=(KEY,)))
    body = {"model": "rerank", "query": "q", "documents": ["a"]}
    with TestClient(app) as client:
        for path in ["/rerank", "/v2/rerank", "/score"]:
            assert_error(client.post(path, json=body), 401, None, "API key")
        keyed = client.post("/v2/rerank", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200
        assert client.get("/scoring/openapi.json").status_code == 401


# ---------------------------------------------------------------- KServe V1 and V2


def pairs_request(texts: list[str], text_pairs: list[str], **more: Any) -> dict[str, Any]:
    def tensor(name: str, data: list[str]) -> dict[str, Any]:
        return {"name": name, "shape": [len(data)], "datatype": "BYTES", "data": data}

    return {"inputs": [tensor("text", texts), tensor("text_pair", text_pairs)], **more}


@pytest.mark.parametrize("model", ["rerank", "embed"])
def test_v1_and_v2_score_text_pairs(client: TestClient, model: str) -> None:
    queries, documents = [QUERY, "a b"], [DOCUMENTS[1], "b c"]
    score = fake_relevance if model == "rerank" else cosine
    expected = [score(q, d) for q, d in zip(queries, documents, strict=True)]
    instances = [{"text": q, "text_pair": d} for q, d in zip(queries, documents, strict=True)]
    v1 = client.post(f"/v1/models/{model}:predict", json={"instances": instances})
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == pytest.approx(expected)
    v2 = client.post(f"/v2/models/{model}/infer", json=pairs_request(queries, documents, id="x"))
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("output-0", "FP64", [2])
    assert output["data"] == pytest.approx(expected) and v2.json()["id"] == "x"


def test_rerank_model_metadata_declares_pair_inputs(client: TestClient) -> None:
    metadata = client.get("/v2/models/rerank").json()
    assert [i["name"] for i in metadata["inputs"]] == ["text", "text_pair"]
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1]}]


@pytest.mark.parametrize(
    ("path", "body", "contains"),
    [
        ("/v1/models/rerank:predict", {"instances": ["a text"]}, '"text_pair": ...}'),
        ("/v1/models/clf:predict", {"instances": [{"text": "a", "text_pair": "b"}]}, "plain"),
        (
            "/v1/models/rerank:predict",
            {"instances": [{"text": "a", "text_pair": "b"}, "c"]},
            '"instances[1]" must be',
        ),
        (
            "/v1/models/rerank:predict",
            {"instances": [{"text": "a", "text_pair": "b"}] * (FAKE_MAX_PAIRS + 1)},
            f"at most {FAKE_MAX_PAIRS} per request",
        ),
        ("/v2/models/rerank/infer", pairs_request(["a", "b"], ["c"]), "as many elements"),
        (
            "/v2/models/rerank/infer",
            {"inputs": pairs_request(["a"], ["b"])["inputs"][:1]},
            "V2 BYTES inputs 'text' and 'text_pair'",
        ),
        ("/v2/models/gpt/infer", pairs_request(["a"], ["b"]), "/v1/chat/completions"),
    ],
)
def test_bad_kserve_pair_requests(
    client: TestClient, path: str, body: dict[str, Any], contains: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert contains in response.json()["error"]
