"""Open Inference Protocol V2 routes: raw HTTP in-process, then tritonclient over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput, InferResult
from tritonclient.utils import InferenceServerException

from hf_runtime.protocols.codecs import raw_tensors, v2_binary
from tests.fakes import FakeRegistry, fake_label, fake_probabilities
from tests.protocols.conftest import LiveServer, make_mounted_app
from tests.protocols.test_kserve_v1 import assert_error

HEADER = v2_binary.HEADER_LENGTH_HEADER


def bytes_input(data: Any, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    shape = [len(data)] if shape is None else shape
    return {"name": "input-0", "shape": shape, "datatype": "BYTES", "data": data, **extra}


def binary_body(request: dict[str, Any], *raw: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(request).encode()
    return head + b"".join(raw), {HEADER: str(len(head))}


# ---------------------------------------------------------------- server and model routes


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata(path: str, registry: FakeRegistry) -> None:
    # Served at the bare "/v2" only in the prefix layout (see kserve_v2.make_app).
    with TestClient(make_mounted_app(registry, v2_at_root=True), follow_redirects=False) as c:
        response = c.get(path)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["name", "version", "extensions"]
    assert body["name"] == "hf-runtime" and body["extensions"] == ["binary_tensor_data"]
    assert isinstance(body["version"], str) and body["version"]


def test_server_metadata_under_a_v2_mount(client: TestClient) -> None:
    assert client.get("/v2/").json()["name"] == "hf-runtime"


def test_health(client: TestClient, registry: FakeRegistry) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    registry.get("embed").ready = False
    not_ready = client.get("/v2/health/ready")
    assert (not_ready.status_code, not_ready.json()) == (503, {"ready": False})
    assert client.get("/v2/health/live").status_code == 200


def test_list_models(client: TestClient, registry: FakeRegistry) -> None:
    assert client.get("/v2/models").json() == {"models": registry.names()}


def test_model_metadata_lists_real_inputs_and_outputs(client: TestClient) -> None:
    assert client.get("/v2/models/ner").json() == {
        "name": "ner",
        "versions": None,
        "platform": "hf-runtime-fake",
        "inputs": [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "output-0", "datatype": "INT64", "shape": [-1, 1, -1]},
            {"name": "offset_mapping", "datatype": "INT64", "shape": [-1, -1, 2]},
        ],
    }


def test_model_routes_unknown_and_not_ready(client: TestClient, registry: FakeRegistry) -> None:
    assert_error(client.get("/v2/models/nope"), 404, "Model with name nope does not exist.")
    assert_error(client.get("/v2/models/nope/ready"), 404)
    assert client.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
    registry.get("clf").ready = False
    assert_error(client.get("/v2/models/clf"), 503, "Model with name clf is not ready.")
    assert_error(client.get("/v2/models/clf/ready"), 503, "not ready")


def test_version_routes(client: TestClient) -> None:
    for path in ["/v2/models/clf/versions/1", "/v2/models/clf/versions/1/ready"]:
        assert_error(client.get(path), 501, "Model versioning not supported yet.")
    infer = {"inputs": [bytes_input(["ab"])]}
    assert_error(client.post("/v2/models/clf/versions/1/infer", json=infer), 501)

    assert client.get("/v2/models/versioned/versions/2").json()["versions"] == ["1", "2"]
    ready = client.get("/v2/models/versioned/versions/2/ready").json()
    assert ready == {"name": "versioned", "ready": True}
    body = client.post("/v2/models/versioned/versions/2/infer", json=infer).json()
    assert body["model_version"] == "2"
    assert_error(client.get("/v2/models/versioned/versions/3"), 404, "no version 3")
    assert_error(client.post("/v2/models/versioned/versions/3/infer", json=infer), 404)


# ---------------------------------------------------------------- JSON inference


def test_infer_response_shape_and_key_order(client: TestClient, registry: FakeRegistry) -> None:
    texts = ["good", "bad"]
    request = {"id": "req-1", "inputs": [bytes_input(texts)]}
    response = client.post("/v2/models/clf/infer", json=request)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["model_name", "model_version", "id", "parameters", "outputs"]
    assert body == {
        "model_name": "clf",
        "model_version": None,
        "id": "req-1",
        "parameters": None,
        "outputs": [
            {
                "name": "output-0",
                "shape": [2],
                "datatype": "INT64",
                "parameters": None,
                "data": [fake_label(t) for t in texts],
            }
        ],
    }
    assert registry.get("clf").predict_calls == [texts]


def test_infer_generates_an_id(client: TestClient) -> None:
    body = client.post("/v2/models/clf/infer", json={"inputs": [bytes_input(["a"])]}).json()
    assert uuid.UUID(body["id"]).version == 4


@pytest.mark.parametrize(
    ("data", "shape", "texts"),
    [
        ("Hello, my dog is cute.", [], ["Hello, my dog is cute."]),  # KServe's e2e request
        (["one"], [], ["one"]),
        ([["a", "b"], ["c", "d"]], [2, 2], ["a", "b", "c", "d"]),
    ],
)
def test_infer_accepts_scalar_and_nested_shapes(
    client: TestClient, registry: FakeRegistry, data: Any, shape: list[int], texts: list[str]
) -> None:
    request = {"inputs": [bytes_input(data, shape)]}
    assert client.post("/v2/models/clf/infer", json=request).status_code == 200
    assert registry.get("clf").predict_calls == [texts]


def test_infer_bytes_outputs_are_strings(client: TestClient) -> None:
    request = {"inputs": [bytes_input(["abcd"])]}
    output = client.post("/v2/models/clf-probs/infer", json=request).json()["outputs"][0]
    assert output["datatype"] == "BYTES"
    assert output["data"] == [str(fake_probabilities("abcd"))]


def test_infer_returns_every_tensor_and_filters_requested_outputs(client: TestClient) -> None:
    request: dict[str, Any] = {"inputs": [bytes_input(["my name is Ada"])]}
    outputs = client.post("/v2/models/ner/infer", json=request).json()["outputs"]
    assert [o["name"] for o in outputs] == ["output-0", "offset_mapping"]
    assert outputs[1]["data"] == [0, 2, 3, 7, 8, 10, 11, 14]

    request["outputs"] = [{"name": "offset_mapping"}, {"name": "offset_mapping"}]
    outputs = client.post("/v2/models/ner/infer", json=request).json()["outputs"]
    assert [o["name"] for o in outputs] == ["offset_mapping"]


def test_infer_failures_from_the_model(client: TestClient, registry: FakeRegistry) -> None:
    request = {"inputs": [bytes_input(["a"])]}
    assert_error(client.post("/v2/models/gpt/infer", json=request), 400, "/v1/chat/completions")
    assert_error(client.post("/v2/models/nope/infer", json=request), 404, "does not exist")
    assert_error(client.post("/v2/models/busy/infer", json=request), 429, "queue is full")
    registry.get("clf").ready = False
    assert_error(client.post("/v2/models/clf/infer", content=b"junk"), 503, "not ready")


# ---------------------------------------------------------------- binary tensor extension


def test_infer_binary_input_json_output(client: TestClient, registry: FakeRegistry) -> None:
    texts = ["héllo", "wörld!"]
    raw = raw_tensors.encode_bytes_elements(texts)
    tensor = {"name": "x", "shape": [2], "datatype": "BYTES"}
    request = {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}
    body, headers = binary_body(request, raw)
    response = client.post("/v2/models/clf/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert HEADER.lower() not in response.headers
    assert response.json()["outputs"][0]["data"] == [fake_label(t) for t in texts]
    assert registry.get("clf").predict_calls == [texts]


@pytest.mark.parametrize(
    ("request_parameters", "output_parameters", "binary_names"),
    [
        ({"binary_data_output": True}, None, {"output-0", "offset_mapping"}),
        (None, {"offset_mapping": {"binary_data": True}}, {"offset_mapping"}),
        (
            {"binary_data_output": True},
            {"output-0": {"binary_data": False}, "offset_mapping": {}},
            {"offset_mapping"},
        ),
    ],
)
def test_infer_binary_outputs(
    client: TestClient,
    request_parameters: dict[str, Any] | None,
    output_parameters: dict[str, dict[str, Any]] | None,
    binary_names: set[str],
) -> None:
    request: dict[str, Any] = {"inputs": [bytes_input(["my name is Ada", "hi"])]}
    if request_parameters:
        request["parameters"] = request_parameters
    if output_parameters:
        request["outputs"] = [{"name": n, "parameters": p} for n, p in output_parameters.items()]
    response = client.post("/v2/models/ner/infer", json=request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers[HEADER])
    header = json.loads(response.content[:header_length])
    assert list(header) == ["model_name", "model_version", "id", "parameters", "outputs"]
    binary = {o["name"] for o in header["outputs"] if "binary_data_size" in (o["parameters"] or {})}
    assert binary == binary_names
    result = InferResult.from_response_body(response.content, header_length=header_length)
    assert result.as_numpy("offset_mapping").reshape(-1).tolist() == [
        *[0, 2, 3, 7, 8, 10, 11, 14],
        *[0, 2, 0, 0, 0, 0, 0, 0],
    ]


def _bad_binary_requests() -> list[tuple[bytes, dict[str, str], str]]:
    raw = raw_tensors.encode_bytes_elements(["abc"])
    good = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "parameters": {}}]}

    def with_size(size: Any, **more: Any) -> dict[str, Any]:
        tensor = {**good["inputs"][0], "parameters": {"binary_data_size": size}, **more}
        return {"inputs": [tensor]}

    body, headers = binary_body(with_size(len(raw)), raw)
    return [
        (body[:-2], headers, "only 5 bytes of binary data remain"),  # truncated body
        (body + b"xx", headers, "2 bytes of binary data follow"),
        (body, {HEADER: "abc"}, "must be a non-negative integer"),
        (body, {HEADER: "-4"}, "must be a non-negative integer"),
        (body, {HEADER: str(len(body) + 1)}, "request body has only"),
        (body, {HEADER: "3"}, "Invalid JSON"),  # header length cuts the JSON short
        (*binary_body(with_size(-1), raw), "binary_data_size must be a non-negative integer"),
        (*binary_body(with_size("7"), raw), "binary_data_size must be a non-negative integer"),
        (*binary_body(with_size(len(raw), data=["a"]), raw), "both 'data' and binary_data_size"),
        (*binary_body(with_size(len(raw)), b"\x03\x00\x00"), "only 3 bytes"),
        (*binary_body(with_size(5), b"\x01\x00\x00\x00\xff"), "is not UTF-8"),
        (*binary_body(with_size(4), b"\x09\x00\x00\x00"), "overruns the tensor data"),
        (*binary_body(good, raw), "has no 'data'"),
    ]


@pytest.mark.parametrize(("body", "headers", "contains"), _bad_binary_requests())
def test_infer_bad_binary_requests_are_400(
    client: TestClient, body: bytes, headers: dict[str, str], contains: str
) -> None:
    assert_error(client.post("/v2/models/clf/infer", content=body, headers=headers), 400, contains)


# ---------------------------------------------------------------- bad JSON requests


def _bad_json_requests() -> list[tuple[Any, str]]:
    ok = bytes_input(["a"])
    return [
        (b"", "empty request body"),
        (b"not json", "Invalid JSON"),
        (b"[1, 2]", "Input should be an object"),
        ({}, "inputs: Field required"),
        ({"inputs": []}, "inputs: List should have at least 1 item"),
        ({"inputs": [{"name": "x"}]}, "inputs.0.shape: Field required"),
        ({"inputs": [{**ok, "shape": ["1"]}]}, "inputs.0.shape.0"),
        ({"inputs": [{**ok, "name": 3}]}, "inputs.0.name"),
        ({"inputs": [ok], "id": 5}, "id: Input should be a valid string"),
        ({"inputs": [{**ok, "shape": [2]}]}, r"shape [2] needs 2 elements, got 1"),
        ({"inputs": [{**ok, "shape": [-1]}]}, "negative dimension"),
        ({"inputs": [{**ok, "shape": [0], "data": []}]}, "has no elements"),
        ({"inputs": [{**ok, "datatype": "STRING"}]}, "invalid datatype 'STRING'"),
        ({"inputs": [{**ok, "datatype": "FP16", "data": [1.0]}]}, "FP16 data via JSON"),
        ({"inputs": [{**ok, "datatype": "INT64", "data": [1]}]}, "must be BYTES, got INT64"),
        ({"inputs": [{**ok, "data": [7]}]}, "7 is not a valid BYTES element"),
        ({"inputs": [{**ok, "data": None}]}, "has no 'data'"),
        ({"inputs": [ok, {**ok, "name": "y"}]}, "exactly one BYTES input"),
        ({"inputs": [ok], "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        ({"inputs": [ok], "outputs": [{}]}, "outputs.0.name: Field required"),
        ({"inputs": [ok], "parameters": {"binary_data_output": "yes"}}, "true or false"),
        ({"inputs": [ok], "outputs": [{"name": "o", "parameters": {"binary_data": 1}}]}, "true or"),
        ({"inputs": [ok], "parameters": []}, "parameters: Input should be an object"),
    ]  # fmt: skip


@pytest.mark.parametrize(("request_body", "contains"), _bad_json_requests())
def test_infer_bad_json_requests_are_400(
    client: TestClient, registry: FakeRegistry, request_body: Any, contains: str
) -> None:
    content = request_body if isinstance(request_body, bytes) else json.dumps(request_body).encode()
    response = client.post(
        "/v2/models/clf/infer", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, contains)
    if "unknown output" not in contains:  # output names are only checked after predicting
        assert registry.get("clf").predict_calls == []


def test_infer_compressed_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/v2/models/clf/infer", content=b"\x1f\x8b", headers={"content-encoding": "gzip"}
    )
    assert_error(response, 400, "Content-Encoding 'gzip' is not supported")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/v2/models/clf/infer", 405),
        ("post", "/v2/health/ready", 405),
        ("get", "/v2/x", 404),
    ],
)
def test_wrong_routes_answer_in_kserve_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    assert_error(client.request(method, path), status)


# ---------------------------------------------------------------- tritonclient, real HTTP


@pytest.fixture
def triton(live_server: LiveServer) -> InferenceServerClient:
    triton_client = InferenceServerClient(live_server.url, network_timeout=10.0)
    yield triton_client
    triton_client.close()


def test_tritonclient_health_and_metadata(
    triton: InferenceServerClient, live_server: LiveServer
) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("clf")
    assert not triton.is_model_ready("nope")
    assert triton.get_server_metadata()["name"] == "hf-runtime"
    metadata = triton.get_model_metadata("ner")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == ["output-0", "offset_mapping"]
    model = live_server.registry.get("embed")
    model.ready = False
    try:
        assert not triton.is_server_ready()
        assert not triton.is_model_ready("embed")
    finally:
        model.ready = True


@pytest.mark.parametrize("binary_input", [False, True])
@pytest.mark.parametrize("binary_output", [False, True, None])
def test_tritonclient_infer_bytes(
    triton: InferenceServerClient, binary_input: bool, binary_output: bool | None
) -> None:
    texts = ["héllo there", "my name is Ada", "x"]
    tensor = InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=binary_input)
    # None: no outputs requested, so tritonclient asks for every output in binary.
    outputs = None
    if binary_output is not None:
        outputs = [
            InferRequestedOutput("output-0", binary_data=binary_output),
            InferRequestedOutput("offset_mapping", binary_data=binary_output),
        ]
    result = triton.infer("ner", [tensor], outputs=outputs, request_id="abc")
    response = result.get_response()
    assert response["id"] == "abc" and response["model_name"] == "ner"
    # len(word) % 3 per word, padded to the longest text's 4 words.
    assert result.as_numpy("output-0").reshape(3, 1, 4).tolist() == [
        [[2, 2, 0, 0]],
        [[2, 1, 2, 0]],
        [[1, 0, 0, 0]],
    ]
    offsets = result.as_numpy("offset_mapping").reshape(3, 4, 2)
    assert offsets[1].tolist() == [[0, 2], [3, 7], [8, 10], [11, 14]]


def test_tritonclient_infer_probabilities_binary(triton: InferenceServerClient) -> None:
    tensor = InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["abcd"], dtype=np.object_), binary_data=True)
    result = triton.infer("clf-probs", [tensor])
    assert result.as_numpy("output-0").tolist() == [str(fake_probabilities("abcd")).encode()]


def test_tritonclient_sees_kserve_errors(triton: InferenceServerClient) -> None:
    tensor = InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["a"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as not_found:
        triton.infer("nope", [tensor])
    assert not_found.value.status() == "404"
    assert "does not exist" in not_found.value.message()
    numbers = InferInput("ids", [2], "INT64")
    numbers.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    with pytest.raises(InferenceServerException) as bad:
        triton.infer("clf", [numbers])
    assert bad.value.status() == "400"
    assert "must be BYTES" in bad.value.message()


def test_raw_http_to_live_server(live_server: LiveServer) -> None:
    request = {"inputs": [bytes_input(["ab"])]}
    with httpx.Client(base_url=f"http://{live_server.url}") as http:
        response = http.post("/v2/models/clf/infer", json=request)
        assert response.json()["outputs"][0]["data"] == [1]
        assert http.post("/v1/models/clf:predict", json={"instances": ["ab"]}).json() == {
            "predictions": [1]
        }
