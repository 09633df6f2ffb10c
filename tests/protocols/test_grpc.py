"""Open Inference Protocol V2 over gRPC, in-process: a grpc.aio server over fake models, called
with tritonclient.grpc unmodified (and with our own stub where tritonclient cannot say it)."""

from __future__ import annotations

import ast
import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from starlette.testclient import TestClient
from tritonclient.utils import InferenceServerException

from hf_runtime.observability.metrics import event_metrics
from hf_runtime.protocols.gateway import GatewaySettings, InFlight
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceStub
from hf_runtime.types import Prediction
from tests.fakes import FakeRegistry, FakeServedModel
from tests.protocols.conftest import make_fake_registry, make_mounted_app
from tests.protocols.grpc_support import GrpcLiveServer

KEY = "grpc-test-key-0001"
TEXTS = ["héllo there", "my name is Ada", "x"]


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
def server(registry: FakeRegistry) -> Iterator[GrpcLiveServer]:
    with GrpcLiveServer(registry) as live:
        yield live


@pytest.fixture
def client(server: GrpcLiveServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url) as triton_client:
        yield triton_client


@pytest.fixture
def stub(server: GrpcLiveServer) -> Iterator[GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.url) as channel:
        yield GRPCInferenceServiceStub(channel)


def text_input(texts: Sequence[str] = TEXTS, name: str = "input-0") -> triton.InferInput:
    tensor = triton.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    return tensor


def status_of(call: Any) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value.status(), caught.value.message()


def rest_outputs(registry: FakeRegistry, model: str, texts: Sequence[str]) -> list[dict[str, Any]]:
    """The same request over V2 REST (JSON), for value-for-value comparisons."""
    request = {"inputs": [{"name": "t", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    with TestClient(make_mounted_app(registry)) as rest:
        response = rest.post(f"/v2/models/{model}/infer", json=request)
    assert response.status_code == 200, response.text
    return response.json()["outputs"]


# ---------------------------------------------------------------- health and metadata


def test_health_and_metadata(client: triton.InferenceServerClient, registry: FakeRegistry) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("clf") and client.is_model_ready("versioned", "2")
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "hf-runtime" and metadata["extensions"] == ["binary_tensor_data"]
    ner = client.get_model_metadata("ner", as_json=True)
    assert ner["platform"] == "hf-runtime-fake"
    assert ner["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": ["-1"]}]
    assert [o["name"] for o in ner["outputs"]] == ["output-0", "offset_mapping"]
    assert client.get_model_metadata("versioned", "1", as_json=True)["versions"] == ["1", "2"]
    registry.get("embed").ready = False
    assert not client.is_server_ready() and client.is_server_live()
    assert not client.is_model_ready("embed")  # loading: ready=false, not an error
    assert status_of(lambda: client.get_model_metadata("embed"))[0] == "StatusCode.UNAVAILABLE"


# ---------------------------------------------------------------- inference


@pytest.mark.parametrize("model", ["clf", "clf-probs", "ner", "embed"])
def test_infer_equals_v2_rest(
    client: triton.InferenceServerClient, registry: FakeRegistry, model: str
) -> None:
    result = client.infer(model, [text_input()], request_id="req-7")
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("req-7", model, "")
    assert len(response.raw_output_contents) == len(response.outputs)  # tritonclient reads raw
    expected = rest_outputs(registry, model, TEXTS)
    assert [o.name for o in response.outputs] == [o["name"] for o in expected]
    for output, rest in zip(response.outputs, expected, strict=True):
        assert (output.datatype, list(output.shape)) == (rest["datatype"], rest["shape"])
        values = result.as_numpy(output.name).reshape(-1).tolist()
        if rest["datatype"] == "BYTES":
            values = [v.decode() for v in values]
        assert values == rest["data"]


def test_sparse_embeddings_are_two_typed_outputs() -> None:
    """A SPLADE model's V2 outputs over gRPC: INT64 indices and FP32 values, [n, k], as REST."""
    registry = FakeRegistry([FakeServedModel("splade", "sparse_embedding")])
    with GrpcLiveServer(registry) as live, triton.InferenceServerClient(live.url) as client:
        result = client.infer("splade", [text_input()])
        expected = rest_outputs(registry, "splade", TEXTS)
        for output, rest in zip(result.get_response().outputs, expected, strict=True):
            assert (output.name, output.datatype) == (rest["name"], rest["datatype"])
            assert list(output.shape) == rest["shape"]
            assert result.as_numpy(output.name).reshape(-1).tolist() == rest["data"]
    assert [o["datatype"] for o in expected] == ["INT64", "FP32"]


def test_requested_outputs_filter(client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("offset_mapping")]
    result = client.infer("ner", [text_input()], outputs=outputs)
    assert [o.name for o in result.get_response().outputs] == ["offset_mapping"]
    assert result.as_numpy("offset_mapping").shape == (3, 4, 2)


def test_typed_contents_in_typed_contents_out(
    stub: GRPCInferenceServiceStub, registry: FakeRegistry
) -> None:
    """A client that sends `contents` gets `contents` back, equal to V2 REST."""
    request = pb.ModelInferRequest(model_name="ner", id="typed")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(TEXTS)])
    tensor.contents.bytes_contents.extend(t.encode() for t in TEXTS)
    response = stub.ModelInfer(request)
    assert not response.raw_output_contents
    expected = rest_outputs(registry, "ner", TEXTS)
    assert [list(o.contents.int64_contents) for o in response.outputs] == [
        rest["data"] for rest in expected
    ]
    probabilities = stub.ModelInfer(
        pb.ModelInferRequest(model_name="clf-probs", inputs=[tensor])
    ).outputs[0]
    values = [v.decode() for v in probabilities.contents.bytes_contents]
    assert values == rest_outputs(registry, "clf-probs", TEXTS)[0]["data"]
    assert isinstance(ast.literal_eval(values[0]), dict)  # KServe's str(dict)

    request.parameters["binary_data_output"].bool_param = True  # asks for raw outputs
    assert len(stub.ModelInfer(request).raw_output_contents) == 2


def test_request_id_in_trailing_metadata(stub: GRPCInferenceServiceStub) -> None:
    request = pb.ServerMetadataRequest()
    _, call = stub.ServerMetadata.with_call(request, metadata=[("x-request-id", "trace-1")])
    assert ("x-request-id", "trace-1") in tuple(call.trailing_metadata())
    _, call = stub.ServerMetadata.with_call(request, metadata=[("x-request-id", "a b")])
    (generated,) = [v for k, v in call.trailing_metadata() if k == "x-request-id"]
    assert len(generated) == 32  # an unsafe id is replaced


# ---------------------------------------------------------------- errors


def test_error_statuses(client: triton.InferenceServerClient, registry: FakeRegistry) -> None:
    numbers = triton.InferInput("ids", [2], "INT64")
    numbers.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    cases = [
        (lambda: client.infer("nope", [text_input()]), "NOT_FOUND", "does not exist"),
        (lambda: client.is_model_ready("nope"), "NOT_FOUND", "does not exist"),
        (lambda: client.get_model_metadata("nope"), "NOT_FOUND", "does not exist"),
        (lambda: client.infer("clf", [numbers]), "INVALID_ARGUMENT", "must be BYTES, got INT64"),
        (
            lambda: client.infer("clf", [text_input(), text_input(name="b")]),
            "INVALID_ARGUMENT",
            "exactly one BYTES input",
        ),
        (
            lambda: client.infer(
                "clf", [text_input()], outputs=[triton.InferRequestedOutput("logits")]
            ),
            "INVALID_ARGUMENT",
            "unknown output 'logits'",
        ),
        (lambda: client.infer("gpt", [text_input()]), "INVALID_ARGUMENT", "/v1/chat/completions"),
        (lambda: client.infer("busy", [text_input()]), "RESOURCE_EXHAUSTED", "queue is full"),
        (
            lambda: client.infer("clf", [text_input()], model_version="1"),
            "UNIMPLEMENTED",
            "Model versioning not supported yet.",
        ),
        (
            lambda: client.infer("versioned", [text_input()], model_version="3"),
            "NOT_FOUND",
            "no version 3",
        ),
    ]
    for call, status, contains in cases:
        got, message = status_of(call)
        assert (got, contains in message) == (f"StatusCode.{status}", True), message
    registry.get("clf").ready = False
    got, message = status_of(lambda: client.infer("clf", [text_input()]))
    assert (got, message) == ("StatusCode.UNAVAILABLE", "Model with name clf is not ready.")


def _bad_raw_requests() -> list[pb.ModelInferRequest]:
    def request(datatype: str, shape: list[int], raw: bytes | None = None) -> Any:
        message = pb.ModelInferRequest(model_name="clf")
        message.inputs.add(name="t", datatype=datatype, shape=shape)
        if raw is not None:
            message.raw_input_contents.append(raw)
        return message

    no_inputs = pb.ModelInferRequest(model_name="clf")
    return [
        no_inputs,
        request("BYTES", [1]),
        request("BYTES", [-4], b""),
        request("BYTES", [2**62, 2**62], b""),
        request("BYTES", [1], b"\xff\xff\xff\xff"),
        request("BYTES", [1], b"\x01\x00\x00\x00\xff"),
        request("FP16", [1], b"\x00"),
        request("nonsense", [1], b""),
        request("BF16", [1]),
    ]


@pytest.mark.parametrize("request_", _bad_raw_requests())
def test_bad_input_is_never_internal(
    stub: GRPCInferenceServiceStub, request_: pb.ModelInferRequest
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


class BrokenRegistry(FakeRegistry):
    def get(self, name: str) -> Any:
        if name == "bug":
            raise RuntimeError("a bug, not the client's fault")
        return super().get(name)


def test_a_bug_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        GrpcLiveServer(BrokenRegistry([FakeServedModel("clf")])) as live,
        triton.InferenceServerClient(live.url) as client,
    ):
        status, message = status_of(lambda: client.infer("bug", [text_input()]))
    assert (status, message) == ("StatusCode.INTERNAL", "Internal server error: RuntimeError")
    assert "a bug, not the client's fault" in caplog.text  # the traceback, not the client


def test_messages_over_max_request_bytes_are_resource_exhausted() -> None:
    settings = GatewaySettings(max_request_bytes=2048)
    with (
        GrpcLiveServer(make_fake_registry(), settings) as live,
        triton.InferenceServerClient(live.url) as client,
    ):
        assert client.infer("clf", [text_input(["short"])]).as_numpy("output-0").tolist() == [0]
        status, _ = status_of(lambda: client.infer("clf", [text_input(["x" * 4096])]))
    assert status == "StatusCode.RESOURCE_EXHAUSTED"


def test_api_keys() -> None:
    settings = GatewaySettings(api_keys=(KEY,))
    with (
        GrpcLiveServer(make_fake_registry(), settings) as live,
        triton.InferenceServerClient(live.url) as client,
    ):
        assert client.is_server_live() and client.is_server_ready()  # health stays open
        for call in (
            lambda: client.infer("clf", [text_input()]),
            lambda: client.get_model_metadata("clf"),
            lambda: client.get_server_metadata(),
            lambda: client.is_model_ready("clf"),
        ):
            status, message = status_of(call)
            assert status == "StatusCode.UNAUTHENTICATED" and "missing API key" in message
        wrong = {"authorization": "Bearer not-the-key-at-all"}
        status, message = status_of(lambda: client.infer("clf", [text_input()], headers=wrong))
        assert (status, message) == ("StatusCode.UNAUTHENTICATED", "invalid API key")
        for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}):
            assert client.infer("clf", [text_input()], headers=headers).as_numpy("output-0").size
            assert client.is_model_ready("clf", headers=headers)


class SlowModel(FakeServedModel):
    """Predicts once `release` is set (polled, so the server's loop keeps running)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    async def predict(self, instances: Sequence[str]) -> Prediction:
        while not self.release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return await super().predict(instances)


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_drain_refuses_new_rpcs_and_waits_for_running_ones() -> None:
    slow = SlowModel("slow")
    draining = threading.Event()
    in_flight = InFlight()
    settings = GatewaySettings(is_draining=draining.is_set)
    results: list[Any] = []
    with (
        GrpcLiveServer(FakeRegistry([slow]), settings, in_flight) as live,
        triton.InferenceServerClient(live.url) as client,
    ):
        running = threading.Thread(
            target=lambda: results.append(client.infer("slow", [text_input(["ab"])]))
        )
        running.start()
        wait_for(lambda: in_flight.count == 1)  # counted in the gateway's in-flight counter
        draining.set()
        status, message = status_of(lambda: client.infer("slow", [text_input(["ab"])]))
        assert status == "StatusCode.UNAVAILABLE" and "shutting down" in message
        assert client.is_server_live() and not client.is_server_ready()
        slow.release.set()
        running.join(timeout=10)
        assert results[0].as_numpy("output-0").tolist() == [1]
        assert in_flight.count == 0


def test_rpcs_are_timed_per_model_with_protocol_grpc(client: triton.InferenceServerClient) -> None:
    histogram = event_metrics().request_duration

    def total(status_class: str, model: str = "clf") -> float:
        series = histogram.labels(model=model, protocol="grpc", status_class=status_class)
        return float(series._sum.get())

    ok_before, bad_before = total("2xx"), total("4xx", "")
    client.infer("clf", [text_input()])
    with pytest.raises(InferenceServerException):
        client.infer("nope", [text_input()])
    assert total("2xx") > ok_before
    assert total("4xx", "") > bad_before  # an unknown model leaves the model label empty


def test_text_pairs_are_scored(
    client: triton.InferenceServerClient, registry: FakeRegistry
) -> None:
    """Two BYTES inputs, text and text_pair: one FP64 score per pair, as over REST."""
    from tests.fake_scorer import fake_relevance

    queries, documents = ["paris is here", "a b"], ["is paris", "c"]
    inputs = [text_input(queries, "text"), text_input(documents, "text_pair")]
    result = client.infer("rerank", inputs)
    expected = [fake_relevance(q, d) for q, d in zip(queries, documents, strict=True)]
    np.testing.assert_allclose(result.as_numpy("output-0"), expected)
    assert result.as_numpy("output-0").dtype == np.float64
    status, message = status_of(lambda: client.infer("rerank", [text_input(queries)]))
    assert status == "StatusCode.INVALID_ARGUMENT" and "text_pair" in message
