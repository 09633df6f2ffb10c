"""Hostile input, round 2, in-process: absurd V2 shapes are refused before any work, and no
client value is echoed back unbounded (HTTP bodies, gRPC status details)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest

from hf_runtime.errors import preview
from hf_runtime.protocols.errors import MESSAGE_CHARS
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceStub
from tests.protocols.conftest import make_fake_registry
from tests.protocols.grpc_support import GrpcLiveServer
from tests.served_app import make_served_app

HUGE_SHAPE = [2**62] * 100_000
MEGABYTE = "x" * (1 << 20)
LONG_NAME = "x" * 60_000  # in a URL: clients and servers cap URLs near 64 KB
BAD = {"name": MEGABYTE, "datatype": MEGABYTE, "shape": [1], "data": ["a"]}
CHAT = {"model": MEGABYTE, "messages": [{"role": "user", "content": "a"}]}
BOUND = MESSAGE_CHARS + 100  # the message, its "[N more chars]" note and the JSON around it


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_served_app(make_fake_registry()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
def stub() -> Iterator[GRPCInferenceServiceStub]:
    with GrpcLiveServer(make_fake_registry()) as server, grpc.insecure_channel(server.url) as ch:
        yield GRPCInferenceServiceStub(ch)


def v2_input(shape: list[int], **fields: object) -> dict[str, object]:
    return {"name": "text", "datatype": "BYTES", "shape": shape, **fields}


def grpc_call(stub: GRPCInferenceServiceStub, request: pb.ModelInferRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=20)
    return caught.value


# ---------------------------------------------------------------- class 2: shapes


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        (HUGE_SHAPE, "at most 64"),
        ([2**62] * 3, "has more than"),
        ([1] * 65, "at most 64"),
        ([-1], "negative dimension"),
    ],
)
async def test_v2_rest_json_shapes_are_refused_before_work(http, shape, says):
    body = {"inputs": [v2_input(shape, data=["a"])]}
    response = await http.post("/v2/models/clf/infer", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]
    assert len(response.content) < BOUND


async def test_v2_binary_extension_shape_is_refused_before_work(http):
    raw = b"\x01\x00\x00\x00a"
    header = json.dumps(
        {"inputs": [v2_input([2**62] * 4, parameters={"binary_data_size": len(raw)})]}
    ).encode()
    response = await http.post(
        "/v2/models/clf/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400, response.text
    assert "has more than" in response.json()["error"]


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_shapes_are_invalid_argument(stub, raw):
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=HUGE_SHAPE)
    request = pb.ModelInferRequest(model_name="clf", inputs=[tensor])
    if raw:
        request.raw_input_contents.append(b"\x01\x00\x00\x00a")
    else:
        tensor.contents.bytes_contents.append(b"a")
    error = grpc_call(stub, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 64" in error.details()


# ---------------------------------------------------------------- class 3: echoes


def test_preview_is_short_and_escaped():
    assert preview("bert") == "bert"
    cut = preview("a\x00\n" + MEGABYTE)
    assert cut.startswith("a\\x00\\n") and cut.endswith(f"[{len(MEGABYTE) + 3 - 64} more chars]")
    assert len(cut) < 100
    assert preview(2 ** (2**20)) == f"<an integer of {2**20 + 1} bits>"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/models/" + LONG_NAME + ":predict", {"instances": ["a"]}, 404),
        ("/v2/models/" + LONG_NAME + "/infer", {"inputs": [v2_input([1], data=["a"])]}, 404),
        ("/v2/models/clf/infer", {"inputs": [BAD]}, 400),
        ("/v1/embeddings", {"model": MEGABYTE, "input": "a"}, 404),
        ("/v1/chat/completions", CHAT, 404),
        ("/v1/rerank", {"model": MEGABYTE, "query": "q", "documents": ["d"]}, 404),
        ("/v1/completions", {"model": "gpt", "prompt": "a", MEGABYTE: 1, "n": "x" + MEGABYTE}, 400),
    ],
)  # fmt: skip
async def test_http_errors_never_echo_a_megabyte(http, path, body, status):
    response = await http.post(path, json=body)
    assert response.status_code == status, response.text[:300]
    assert len(response.content) < BOUND


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.ModelInferRequest(model_name=MEGABYTE), grpc.StatusCode.NOT_FOUND),
        (
            pb.ModelInferRequest(
                model_name="clf",
                inputs=[pb.ModelInferRequest.InferInputTensor(name="t", datatype=MEGABYTE)],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
def test_grpc_errors_carry_small_details(stub, request_, code):
    error = grpc_call(stub, request_)
    assert error.code() == code  # not RESOURCE_EXHAUSTED for oversized metadata
    assert len(error.details()) < BOUND


def test_grpc_metadata_rpcs_bound_the_name(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(pb.ModelMetadataRequest(name=MEGABYTE), timeout=20)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(caught.value.details()) < BOUND
