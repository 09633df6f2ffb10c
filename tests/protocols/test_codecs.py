"""The codecs between wire representations and the data plane's neutral types: V1 bodies, V2
JSON documents, the binary tail, and gRPC messages (typed and raw contents)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tritonclient.utils import serialize_byte_tensor

from hf_runtime.dataplane import InferenceResponse, RequestedOutput, ServerMetadata
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs import raw_tensors, v1_json, v2_binary, v2_json
from hf_runtime.protocols.grpc import codec
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.types import ModelMetadata, OutputTensor, Prediction, TensorSpec

# ---------------------------------------------------------------- KServe V1


def test_v1_extra_tensors_are_v1_output_tensors() -> None:
    offsets = OutputTensor("offset_mapping", "INT64", [1, 1, 2], [np.int64(0), 2])
    prediction = Prediction([[[1]]], [OutputTensor("output-0", "INT64", [1, 1, 1], [1]), offsets])
    body = v1_json.encode_prediction(prediction)
    assert body == {
        "predictions": [[[1]]],
        "outputs": [
            {"name": "offset_mapping", "shape": [1, 1, 2], "datatype": "INT64", "data": [0, 2]}
        ],
    }
    assert set(body["outputs"][0]) == {"name", "datatype", "shape", "data"}  # KServe's V1 keys
    assert v1_json.encode_prediction(Prediction([{0: 0.5}], [])) == {"predictions": [{"0": 0.5}]}


def test_v1_decode_instances() -> None:
    assert v1_json.decode_instances({"instances": "one"}) == ["one"]
    assert v1_json.decode_instances({"inputs": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(InvalidInput, match="is empty"):
        v1_json.decode_instances({"instances": []})


# ---------------------------------------------------------------- V2 JSON + binary tail


def test_v2_json_request_round_trip_with_a_binary_input() -> None:
    raw = raw_tensors.encode_bytes_elements(["b1", "b2"])
    body = v2_json.InferenceRequestBody.model_validate(
        {
            "id": "r",
            "parameters": {"binary_data_output": True, "custom": 3},
            "inputs": [
                {"name": "j", "shape": [1, 2], "datatype": "BYTES", "data": [["x", "y"]]},
                {"name": "b", "shape": [2], "datatype": "BYTES",
                 "parameters": {"binary_data_size": len(raw)}},
            ],
            "outputs": [{"name": "o", "parameters": {"binary_data": False}}, {"name": "p"}],
        }
    )  # fmt: skip
    tail = v2_binary.BinaryTail(raw)
    request = v2_json.decode_request(body, tail.take)
    tail.finish()
    assert [(t.name, t.shape, t.data) for t in request.inputs] == [
        ("j", [1, 2], ["x", "y"]),
        ("b", [2], [b"b1", b"b2"]),
    ]
    assert request.inputs[1].parameters == {"binary_data_size": len(raw)}
    assert request.id == "r" and request.parameters["custom"] == 3
    assert request.outputs == [RequestedOutput("o", False), RequestedOutput("p", None)]
    assert (request.wants_binary("o"), request.wants_binary("p")) == (False, True)


def test_binary_tail_must_be_consumed() -> None:
    tail = v2_binary.BinaryTail(b"abcd")
    assert tail.take("x", {"binary_data_size": 3}) == b"abc"
    assert tail.take("y", None) is None
    with pytest.raises(InvalidInput, match="1 bytes of binary data follow"):
        tail.finish()


def test_v2_response_header_key_order() -> None:
    response = InferenceResponse("m", None, "i", [])
    header = v2_json.encode_response_header(response, [])
    assert list(header) == ["model_name", "model_version", "id", "parameters", "outputs"]


# ---------------------------------------------------------------- gRPC


def grpc_input(name: str, datatype: str, shape: list[int], **contents: Any) -> Any:
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return tensor


def test_grpc_typed_contents_decode() -> None:
    request = pb.ModelInferRequest(
        model_name="m",
        id="req",
        inputs=[grpc_input("t", "BYTES", [2], bytes_contents=[b"a", "é".encode()])],
    )
    request.parameters["binary_data_output"].bool_param = True
    request.outputs.add(name="o").parameters["binary_data"].bool_param = False
    decoded = codec.decode_infer_request(request)
    assert decoded.inputs[0].data == [b"a", "é".encode()]
    assert decoded.id == "req" and decoded.binary_outputs is True
    assert decoded.outputs == [RequestedOutput("o", False)]
    assert codec.raw_outputs(request, decoded) is True  # binary_data_output asks for raw


@pytest.mark.parametrize(
    ("datatype", "field", "values"),
    [
        ("BOOL", "bool_contents", [True, False]),
        ("INT8", "int_contents", [-128, 127]),
        ("INT32", "int_contents", [-(2**31), 2**31 - 1]),
        ("INT64", "int64_contents", [-(2**63), 2**63 - 1]),
        ("UINT16", "uint_contents", [0, 65535]),
        ("UINT64", "uint64_contents", [0, 2**64 - 1]),
        ("FP32", "fp32_contents", [0.5, -2.0]),
        ("FP64", "fp64_contents", [0.1, -1e300]),
    ],
)
def test_grpc_typed_contents_round_trip(datatype: str, field: str, values: list[Any]) -> None:
    request = pb.ModelInferRequest(inputs=[grpc_input("t", datatype, [2], **{field: values})])
    assert codec.decode_infer_request(request).inputs[0].data == values
    response = InferenceResponse("m", None, "i", [OutputTensor("o", datatype, [2], values)])
    message = codec.encode_infer_response(response, raw=False)
    assert list(getattr(message.outputs[0].contents, field)) == values
    assert not message.raw_output_contents


@pytest.mark.parametrize("datatype", ["BOOL", "INT16", "UINT32", "FP16", "BF16", "FP32", "BYTES"])
def test_grpc_raw_contents_round_trip(datatype: str) -> None:
    values: list[Any] = {
        "BOOL": [True, False], "INT16": [-3, 300], "UINT32": [0, 2**32 - 1],
        "FP16": [0.5, 1024.0], "BF16": [0.5, -2.0], "FP32": [0.25, -1.5], "BYTES": [b"a", b""],
    }[datatype]  # fmt: skip
    raw = raw_tensors.encode_binary_tensor(datatype, values)
    request = pb.ModelInferRequest(
        inputs=[grpc_input("t", datatype, [2])], raw_input_contents=[raw]
    )
    decoded = codec.decode_infer_request(request)
    assert decoded.inputs[0].data == values
    assert codec.raw_outputs(request, decoded) is True  # raw in, raw out (KServe's rule)
    response = InferenceResponse("m", "1", "i", [OutputTensor("o", datatype, [2], values)])
    message = codec.encode_infer_response(response, raw=True)
    assert list(message.raw_output_contents) == [raw]
    assert message.model_version == "1" and not message.outputs[0].HasField("contents")


def test_grpc_raw_bytes_match_tritonclient_serialisation() -> None:
    texts = ["héllo", "", "x" * 300]
    raw = serialize_byte_tensor(np.array(texts, dtype=np.object_)).item()
    request = pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [3])], raw_input_contents=[raw])
    assert codec.decode_infer_request(request).inputs[0].data == [t.encode() for t in texts]


def test_grpc_bytes_outputs_and_half_precision_force_raw() -> None:
    probabilities = OutputTensor("p", "BYTES", [1], [{0: 0.5}])
    message = codec.encode_infer_response(InferenceResponse("m", None, "i", [probabilities]), False)
    assert list(message.outputs[0].contents.bytes_contents) == [b"{0: 0.5}"]  # str(dict)
    half = OutputTensor("h", "FP16", [1], [0.5])
    message = codec.encode_infer_response(InferenceResponse("m", None, "i", [half]), False)
    assert list(message.raw_output_contents) == [np.array([0.5], "<f2").tobytes()]


def _bad_grpc_requests() -> list[tuple[Any, str]]:
    raw = raw_tensors.encode_bytes_elements(["a"])
    both = grpc_input("t", "BYTES", [1], bytes_contents=[b"a"])
    return [
        (pb.ModelInferRequest(inputs=[grpc_input("t", "STRING", [1])]), "invalid datatype"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [2], bytes_contents=[b"a"])]),
         r"shape \[2\] needs 2 elements, got 1"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [-1], bytes_contents=[b"a"])]),
         "negative dimension"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [1], int64_contents=[1])]),
         "belong in contents.bytes_contents, not contents.int64_contents"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "INT8", [1], int_contents=[300])]),
         "300 is not a valid INT8 element"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "FP32", [1], fp32_contents=[np.inf])]),
         "not a valid FP32 element"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "FP16", [1])]), "no typed contents"),
        (pb.ModelInferRequest(inputs=[both], raw_input_contents=[raw]), "has contents while"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [1])] * 2, raw_input_contents=[raw]),
         "raw_input_contents has 1 entries for 2 inputs"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [1])], raw_input_contents=[b"\x05"]),
         "truncated BYTES element length"),
        (pb.ModelInferRequest(inputs=[grpc_input("t", "INT32", [1])], raw_input_contents=[b"\x00"]),
         "not a whole number of INT32 elements"),
    ]  # fmt: skip


@pytest.mark.parametrize(("request_", "contains"), _bad_grpc_requests())
def test_grpc_bad_requests_are_invalid_input(request_: Any, contains: str) -> None:
    with pytest.raises(InvalidInput, match=contains):
        codec.decode_infer_request(request_)


def test_grpc_bad_binary_flags_are_invalid_input() -> None:
    request = pb.ModelInferRequest(inputs=[grpc_input("t", "BYTES", [1], bytes_contents=[b"a"])])
    request.parameters["binary_data_output"].string_param = "yes"
    with pytest.raises(InvalidInput, match="binary_data_output must be true or false"):
        codec.decode_infer_request(request)


def test_grpc_parameters_and_metadata() -> None:
    parameters = {"b": pb.InferParameter(bool_param=True), "i": pb.InferParameter(int64_param=-2)}
    parameters["s"] = pb.InferParameter(string_param="x")
    parameters["d"] = pb.InferParameter(double_param=0.5)
    parameters["u"] = pb.InferParameter(uint64_param=2**64 - 1)
    parameters["none"] = pb.InferParameter()
    decoded = codec.decode_parameters(parameters)
    assert decoded == {"b": True, "i": -2, "s": "x", "d": 0.5, "u": 2**64 - 1, "none": None}
    server = codec.encode_server_metadata(ServerMetadata("hf-runtime", "1", ["binary_tensor_data"]))
    assert list(server.extensions) == ["binary_tensor_data"]
    spec = TensorSpec("input-0", "BYTES", [-1])
    metadata = codec.encode_model_metadata(ModelMetadata("m", "t", "p", [spec], [spec], None))
    assert list(metadata.versions) == [] and list(metadata.inputs[0].shape) == [-1]
