"""Our .proto is wire-compatible with KServe's / Triton's `inference.GRPCInferenceService`,
and the checked-in stubs are what `make grpc-stubs` generates from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from tritonclient.grpc import service_pb2 as triton_pb2

from hf_runtime.protocols.grpc import generate
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceServicer
from hf_runtime.protocols.grpc.service import SERVICE_NAME

METHODS = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
]
TRITON_SERVICE = triton_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def field_signature(field: FieldDescriptor) -> tuple[object, ...]:
    """What protobuf's wire format depends on: number, wire type, repetition, oneof, and the
    same for a message-typed field's own fields (map entries included)."""
    nested = message_signature(field.message_type) if field.message_type else None
    oneof = field.containing_oneof.name if field.containing_oneof else None
    return (field.name, field.number, field.type, field.is_repeated, oneof, nested)


def message_signature(message: Descriptor) -> tuple[object, ...]:
    return tuple(sorted(field_signature(f) for f in message.fields))


def triton_method(name: str) -> MethodDescriptor:
    return TRITON_SERVICE.methods_by_name[name]


def test_service_name_and_methods_match_the_specification() -> None:
    assert TRITON_SERVICE.full_name == SERVICE_NAME == "inference.GRPCInferenceService"
    for method in METHODS:
        assert callable(getattr(GRPCInferenceServiceServicer, method))
    proto = (generate.SERVICE_PROTO).read_text()
    assert "package inference;" in proto and "service GRPCInferenceService {" in proto
    for method in METHODS:
        assert f"rpc {method}(" in proto


@pytest.mark.parametrize("method", METHODS)
def test_messages_are_wire_compatible_with_tritonclient(method: str) -> None:
    theirs = triton_method(method)
    ours_in = pb.DESCRIPTOR.message_types_by_name[theirs.input_type.name]
    ours_out = pb.DESCRIPTOR.message_types_by_name[theirs.output_type.name]
    assert message_signature(ours_in) == message_signature(theirs.input_type)
    assert message_signature(ours_out) == message_signature(theirs.output_type)


def test_a_message_crosses_between_the_two_definitions() -> None:
    ours = pb.ModelInferRequest(model_name="m", id="i", raw_input_contents=[b"\x01"])
    tensor = ours.inputs.add(name="t", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"x")
    ours.parameters["p"].uint64_param = 7
    theirs = triton_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.inputs[0].contents.bytes_contents == [b"x"]
    assert theirs.parameters["p"].uint64_param == 7
    assert pb.ModelInferRequest.FromString(theirs.SerializeToString()) == ours


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    """Fails when a .proto changed without `make grpc-stubs` (or with another grpcio-tools)."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with the test extra")
    for generated in generate.generate(tmp_path):
        checked_in = generate.HERE / generated.name
        assert checked_in.read_text() == generated.read_text(), (
            f"{checked_in.name} is stale: run `make grpc-stubs`"
        )
