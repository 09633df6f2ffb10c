"""gRPC Open Inference Protocol messages <-> the data plane's neutral types.

Tensors travel either typed, in `InferTensorContents` (one field per datatype), or as raw
bytes in `raw_input_contents` / `raw_output_contents` (one entry per tensor, laid out as V2's
binary extension: see `codecs.raw_tensors`). The specification allows one or the other for a
whole message, never a mix. Responses use raw contents when the request did (KServe's rule;
tritonclient.grpc always sends raw inputs and reads only raw outputs), when it asks for binary
outputs (`binary_data_output`, or an output's `binary_data`), or when an output is FP16/BF16,
which has no typed field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from hf_runtime.dataplane.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    RequestTensor,
    ServerMetadata,
    check_shape,
)
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.datatypes import (
    NUMPY_DTYPES,
    RAW_ONLY,
    check_datatype,
    check_element,
)
from hf_runtime.protocols.codecs.parameters import BINARY_DATA, BINARY_DATA_OUTPUT, binary_flag
from hf_runtime.protocols.codecs.raw_tensors import (
    bytes_element,
    decode_binary_tensor,
    encode_binary_tensor,
)
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.types import ModelMetadata, OutputTensor, TensorSpec

# The InferTensorContents field that holds each datatype's elements.
CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip
_ALL_CONTENTS = sorted(set(CONTENTS_FIELDS.values()))


# ---------------------------------------------------------------- parameters


def decode_parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameter map as plain values (an InferParameter with no value set is None)."""
    decoded: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        decoded[key] = getattr(parameter, choice) if choice else None
    return decoded


# ---------------------------------------------------------------- request


def decode_infer_request(request: pb.ModelInferRequest) -> InferenceRequest:
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw_contents)} entries for {len(request.inputs)} "
            "inputs: give one per input, in input order"
        )
    inputs = [
        decode_input(tensor, raw_contents[index] if raw_contents else None)
        for index, tensor in enumerate(request.inputs)
    ]
    parameters = decode_parameters(request.parameters)
    outputs = [
        RequestedOutput(o.name, binary_flag(decode_parameters(o.parameters), BINARY_DATA))
        for o in request.outputs
    ]
    return InferenceRequest(
        inputs=inputs,
        id=request.id or None,  # proto3: "" is "not given"
        parameters=parameters,
        outputs=outputs or None,
        binary_outputs=binary_flag(parameters, BINARY_DATA_OUTPUT) or False,
    )


def decode_input(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> RequestTensor:
    name, datatype = tensor.name, tensor.datatype
    check_datatype(name, datatype)
    check_shape(name, tensor.shape)  # rank first: a shape can be 100,000 dimensions long
    if raw is not None:
        if tensor.HasField("contents"):
            raise InvalidInput(
                f"input '{name}' has contents while the request uses raw_input_contents; "
                "send every input one way"
            )
        values = decode_binary_tensor(name, datatype, raw, tensor.shape)
    else:
        values = _typed_contents(name, datatype, tensor.contents)
    parameters = decode_parameters(tensor.parameters)
    return RequestTensor(name, datatype, list(tensor.shape), values, parameters)


def _typed_contents(name: str, datatype: str, contents: pb.InferTensorContents) -> list[Any]:
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:  # FP16 / BF16
        raise InvalidInput(
            f"input '{name}': {datatype} has no typed contents; send it in raw_input_contents"
        )
    for other in _ALL_CONTENTS:
        if other != field and len(getattr(contents, other)):
            raise InvalidInput(
                f"input '{name}' is {datatype}: its elements belong in contents.{field}, "
                f"not contents.{other}"
            )
    # Checked like JSON elements: int_contents holds INT8 values as int32, floats may be NaN.
    return [check_element(name, datatype, value) for value in getattr(contents, field)]


def raw_outputs(request: pb.ModelInferRequest, decoded: InferenceRequest) -> bool:
    """Whether the response carries its outputs in raw_output_contents (see the module)."""
    if request.raw_input_contents or decoded.binary_outputs:
        return True
    return any(output.binary for output in decoded.outputs or ())


# ---------------------------------------------------------------- response


def encode_infer_response(response: InferenceResponse, raw: bool) -> pb.ModelInferResponse:
    raw = raw or any(tensor.datatype in RAW_ONLY for tensor in response.outputs)
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id,
    )
    for tensor in response.outputs:
        output = message.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape)
        )
        if raw:
            message.raw_output_contents.append(encode_binary_tensor(tensor.datatype, tensor.data))
        else:
            getattr(output.contents, CONTENTS_FIELDS[tensor.datatype]).extend(_typed(tensor))
    return message


def _typed(tensor: OutputTensor) -> Iterable[Any]:
    if tensor.datatype == "BYTES":
        return [bytes_element(item) for item in tensor.data]
    # Through numpy: plain Python values of exactly the datatype (numpy scalars included).
    return np.asarray(tensor.data, dtype=NUMPY_DTYPES[tensor.datatype]).tolist()


def encode_server_metadata(metadata: ServerMetadata) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(
        name=metadata.name, version=metadata.version, extensions=metadata.extensions
    )


def encode_model_metadata(metadata: ModelMetadata) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions or [],
        platform=metadata.platform,
        inputs=[_tensor_metadata(spec) for spec in metadata.inputs],
        outputs=[_tensor_metadata(spec) for spec in metadata.outputs],
    )


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=spec.datatype, shape=list(spec.shape)
    )
