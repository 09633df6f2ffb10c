"""KServe V1 routes, mounted at /v1 under a parent Starlette app as the service mounts them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols import kserve_v1
from tests.fakes import FakeRegistry, FakeServedModel, fake_embedding, fake_label
from tests.protocols.conftest import make_mounted_app


def assert_error(response: httpx.Response, status: int, contains: str = "") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert contains in body["error"]
    return body["error"]


# ---------------------------------------------------------------- model listing and status


def test_list_models_satisfies_kserve_and_openai_clients(
    client: TestClient, registry: FakeRegistry
) -> None:
    body = client.get("/v1/models").json()
    assert body["models"] == registry.names()
    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == registry.names()
    created = body["data"][0]["created"]
    assert isinstance(created, int) and created > 1_600_000_000
    expected = {"object": "model", "created": created, "owned_by": "hf-runtime"}
    for card in body["data"]:
        assert card == {"id": card["id"], **expected}


def test_list_models_works_with_the_openai_client(
    client: TestClient, registry: FakeRegistry
) -> None:
    import openai

    api = openai.OpenAI(api_key="x", base_url="http://testserver/v1", http_client=client)
    assert [m.id for m in api.models.list().data] == registry.names()
    assert api.models.retrieve("clf").id == "clf"


def test_model_status_ready(client: TestClient) -> None:
    body = client.get("/v1/models/clf").json()
    assert body["name"] == "clf" and body["ready"] is True
    assert body["id"] == "clf" and body["object"] == "model" and body["owned_by"] == "hf-runtime"
    assert body["created"] == client.get("/v1/models").json()["data"][0]["created"]


def test_model_status_unknown_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/models/nope"), 404, "Model with name nope does not exist.")


def test_model_status_not_ready_is_503(client: TestClient, registry: FakeRegistry) -> None:
    registry.get("clf").ready = False
    error = assert_error(client.get("/v1/models/clf"), 503)
    assert error == "Model with name clf is not ready."


# ---------------------------------------------------------------- predict


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_sequence_classification(
    client: TestClient, registry: FakeRegistry, key: str
) -> None:
    texts = ["I love it", "meh"]
    response = client.post("/v1/models/clf:predict", json={key: texts})
    assert response.status_code == 200
    assert response.json() == {"predictions": [fake_label(t) for t in texts]}
    assert registry.get("clf").predict_calls == [texts]


def test_predict_bare_string_is_one_text(client: TestClient, registry: FakeRegistry) -> None:
    response = client.post("/v1/models/clf:predict", json={"instances": "just one"})
    assert response.json() == {"predictions": [fake_label("just one")]}
    assert registry.get("clf").predict_calls == [["just one"]]


def test_predict_probabilities_have_string_keys(client: TestClient) -> None:
    response = client.post("/v1/models/clf-probs:predict", json={"instances": ["abcd"]})
    assert response.status_code == 200
    assert response.text == '{"predictions":[{"0":0.96,"1":0.04}]}'


def test_predict_extra_tensors_go_under_outputs(client: TestClient) -> None:
    # As V1 output tensors: exactly name, shape, datatype and data (no V2 "parameters").
    response = client.post("/v1/models/ner:predict", json={"instances": ["my name is Ada"]})
    assert response.status_code == 200
    assert response.json() == {
        "predictions": [[[2, 1, 2, 0]]],
        "outputs": [
            {
                "name": "offset_mapping",
                "shape": [1, 4, 2],
                "datatype": "INT64",
                "data": [0, 2, 3, 7, 8, 10, 11, 14],
            }
        ],
    }


def test_predict_embeddings(client: TestClient) -> None:
    response = client.post("/v1/models/embed:predict", json={"instances": ["hi"]})
    assert response.json() == {"predictions": [fake_embedding([ord("h"), ord("i")])]}


def test_predict_route_with_colon_in_model_name(client: TestClient) -> None:
    response = client.post("/v1/models/ns:model:predict", json={"instances": ["ab"]})
    assert response.json() == {"predictions": [1]}
    assert client.get("/v1/models/ns:model").json()["name"] == "ns:model"


def test_predict_generative_model_points_to_openai_routes(client: TestClient) -> None:
    response = client.post("/v1/models/gpt:predict", json={"instances": ["hello"]})
    assert_error(response, 400, "/v1/chat/completions")


def test_predict_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/v1/models/nope:predict", json={"instances": ["a"]})
    assert_error(response, 404, "Model with name nope does not exist.")


def test_predict_not_ready_is_503_even_with_a_bad_body(
    client: TestClient, registry: FakeRegistry
) -> None:
    registry.get("clf").ready = False
    assert_error(client.post("/v1/models/clf:predict", content=b"junk"), 503, "not ready")


def test_predict_overloaded_model_is_429(client: TestClient) -> None:
    assert_error(client.post("/v1/models/busy:predict", json={"instances": ["a"]}), 429, "full")


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b"", "Unrecognized request format"),
        (b"not json", "Unrecognized request format"),
        (b'{"instances": ["a"', "Unrecognized request format"),
        (b"\xff\xfe\x00garbage", "Unrecognized request format"),
        (b"[" * 100_000, "Unrecognized request format"),
        (b'["a", "b"]', "must be a JSON object"),
        (b'"a"', "must be a JSON object"),
        (b"{}", 'missing "instances"'),
        (b'{"instance": ["a"]}', 'missing "instances"'),
        (b'{"instances": ["a"], "inputs": ["b"]}', "not both"),
        (b'{"instances": []}', "is empty"),
        (b'{"inputs": []}', '"inputs" is empty'),
        (b'{"instances": null}', "must be a list of strings, got NoneType"),
        (b'{"instances": 3}', "must be a list of strings, got int"),
        (b'{"instances": {"text": "a"}}', "must be a list of strings, got dict"),
        (b'{"instances": ["a", 1]}', '"instances[1]" must be a string, got int'),
        (b'{"instances": [null]}', '"instances[0]" must be a string'),
        (b'{"instances": [{"text": "a"}]}', 'two strings, "text" and "text_pair"'),
        (b'{"instances": [["a"]]}', "must be a string, got list"),
    ],
)
def test_predict_bad_bodies_are_400(
    client: TestClient, registry: FakeRegistry, body: bytes, contains: str
) -> None:
    response = client.post(
        "/v1/models/clf:predict", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, contains)
    assert registry.get("clf").predict_calls == []


def test_model_errors_keep_their_message(registry: FakeRegistry) -> None:
    registry.models["strict"] = FakeServedModel(
        "strict", fail_with=InvalidInput("text 0 is empty", param="instances")
    )
    with TestClient(make_mounted_app(registry)) as test_client:
        response = test_client.post("/v1/models/strict:predict", json={"instances": [""]})
    assert_error(response, 400, "text 0 is empty")


# ---------------------------------------------------------------- other routes


def test_explain_is_501(client: TestClient) -> None:
    assert_error(client.post("/v1/models/clf:explain", json={"instances": ["a"]}), 501, "explain")
    assert_error(client.post("/v1/models/nope:explain", json={}), 404)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/v1/models", 405),
        ("put", "/v1/models/clf:predict", 405),
        ("get", "/v1/models/clf/extra", 404),
    ],
)
def test_wrong_routes_answer_in_kserve_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    assert_error(client.request(method, path), status)


def test_get_on_predict_path_is_an_unknown_model(client: TestClient) -> None:
    # GET /models/{name} sees the name "clf:predict": a clear 404, as in KServe.
    assert_error(client.get("/v1/models/clf:predict"), 404, "clf:predict")


def test_parse_instances_returns_the_texts() -> None:
    body: dict[str, Any] = {"inputs": ["a", "b"]}
    assert kserve_v1.parse_instances(json.dumps(body).encode()) == ["a", "b"]
