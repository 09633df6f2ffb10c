"""gRPC messages that do not parse answer INVALID_ARGUMENT with a short message, on every RPC:
hand-made bytes sent over a raw channel (identity serializers), and byte-level fuzzing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.service import SERVICE_NAME
from tests.protocols.conftest import make_fake_registry
from tests.protocols.grpc_support import GrpcLiveServer

RPCS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]


def nested_groups(depth: int) -> bytes:
    """Field 1 as a group (start tag 0x0b), nested `depth` times: past protobuf's depth limit."""
    return b"\x0b" * depth + b"\x0c" * depth


def string_field(field: int, value: bytes) -> bytes:
    return bytes([field << 3 | 2, len(value)]) + value


# Bytes that are no message of any RPC: truncated length, bad wire type, bad UTF-8 in a string
# field (proto3 strings must be UTF-8), a varint that never ends, groups nested 10,000 deep.
MALFORMED = {
    "truncated": b"\x0a\xff\xff\x03abc",
    "bad_wire_type": b"\x0f\x00",
    "bad_utf8_string": string_field(1, b"\xff\xfe\xfd"),
    "endless_varint": b"\x08" + b"\xff" * 20,
    "deep_groups": nested_groups(10_000),
    "garbage": bytes(range(256)),
}


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with GrpcLiveServer(make_fake_registry()) as server, grpc.insecure_channel(server.url) as raw:
        yield raw


def raw_call(channel: grpc.Channel, rpc: str, data: bytes, **kwargs: object) -> bytes:
    method = channel.unary_unary(
        f"/{SERVICE_NAME}/{rpc}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    return method(data, timeout=20, **kwargs)


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_bytes_are_invalid_argument_on_every_rpc(channel, rpc, name):
    data = MALFORMED[name]
    if rpc in ("ServerLive", "ServerReady", "ServerMetadata") and name == "bad_utf8_string":
        pytest.skip("these messages have no field 1: protobuf keeps it as an unknown field")
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(channel, rpc, data)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert "not a valid protobuf message" in caught.value.details()
    assert len(caught.value.details()) < 300


def test_a_valid_message_still_works_over_the_raw_channel(channel):
    answer = raw_call(channel, "ServerLive", pb.ServerLiveRequest().SerializeToString())
    assert pb.ServerLiveResponse.FromString(answer).live is True


def test_bad_utf8_in_a_model_name_is_invalid_argument(channel):
    for rpc in ("ModelReady", "ModelMetadata", "ModelInfer"):
        with pytest.raises(grpc.RpcError) as caught:
            raw_call(channel, rpc, string_field(1, b"m\xc3\x28"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_malformed_message_without_a_key_is_unauthenticated():
    keyed = GatewaySettings(api_keys=("k" * 16,))
    with (
        GrpcLiveServer(make_fake_registry(), keyed) as server,
        grpc.insecure_channel(server.url) as raw,
    ):
        with pytest.raises(grpc.RpcError) as caught:
            raw_call(raw, "ModelInfer", MALFORMED["garbage"])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


# Any bytes at all: a parsed message or INVALID_ARGUMENT/NOT_FOUND/..., never UNKNOWN/INTERNAL.
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(rpc=st.sampled_from(RPCS), data=st.binary(max_size=300))
def test_fuzzed_bytes_never_get_unknown_or_internal(channel, rpc, data):
    try:
        raw_call(channel, rpc, data)
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, (rpc, data, exc)
        assert len(exc.details() or "") < 1000


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_mutations_of_a_valid_infer_message(channel, data):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="BYTES", shape=[1],
        contents=pb.InferTensorContents(bytes_contents=[b"hello"]),
    )  # fmt: skip
    valid = bytearray(pb.ModelInferRequest(model_name="clf", inputs=[tensor]).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(valid) - 1))
        valid[at] = data.draw(st.integers(0, 255))
    try:
        raw_call(channel, "ModelInfer", bytes(valid))
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, (bytes(valid), exc)
