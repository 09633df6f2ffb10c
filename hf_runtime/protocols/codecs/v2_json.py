"""V2 JSON inference documents <-> the data plane's neutral request and response.

The request document is validated by pydantic models (they also give the OpenAPI schema);
tensor `data` may be flat or nested row-major (the V2 spec allows both) and every element is
checked against its datatype. A tensor sent with the binary extension arrives here as its raw
bytes (see `v2_binary`). Output tensors are written in KServe's key order, BYTES as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from hf_runtime.dataplane.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    RequestTensor,
    check_shape,
)
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.datatypes import RAW_ONLY, check_datatype, check_element
from hf_runtime.protocols.codecs.json_values import encode_json_value
from hf_runtime.protocols.codecs.parameters import BINARY_DATA, BINARY_DATA_OUTPUT, binary_flag
from hf_runtime.protocols.codecs.raw_tensors import decode_binary_tensor
from hf_runtime.types import OutputTensor


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    parameters: dict[str, Any] | None = None


class InferenceRequestBody(BaseModel):
    """The JSON part of a V2 infer request (the binary tail, if any, is handled separately)."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


# ---------------------------------------------------------------- request


def decode_request(
    body: InferenceRequestBody, raw_for: Callable[[str, dict[str, Any] | None], bytes | None]
) -> InferenceRequest:
    """The neutral request. `raw_for(name, parameters)` gives an input's binary data (None
    when it is JSON), called for each input in order."""
    inputs = [
        decode_input(
            t.name, t.datatype, t.shape, t.data, raw_for(t.name, t.parameters), t.parameters
        )
        for t in body.inputs
    ]
    outputs = None
    if body.outputs is not None:
        outputs = [
            RequestedOutput(o.name, binary_flag(o.parameters, BINARY_DATA)) for o in body.outputs
        ]
    return InferenceRequest(
        inputs=inputs,
        id=body.id,
        parameters=dict(body.parameters or {}),
        outputs=outputs,
        binary_outputs=binary_flag(body.parameters, BINARY_DATA_OUTPUT) or False,
    )


def decode_input(
    name: str,
    datatype: str,
    shape: Sequence[int],
    data: Any,
    raw: bytes | None,
    parameters: dict[str, Any] | None = None,
) -> RequestTensor:
    """One input tensor. Exactly one of `data` (JSON) and `raw` (binary) must be given. The
    shape's rank (and, for binary data, its byte size) is checked before any data is read."""
    check_datatype(name, datatype)
    check_shape(name, shape)
    if raw is not None:
        if data is not None:
            raise InvalidInput(f"input '{name}' has both 'data' and binary_data_size")
        values = decode_binary_tensor(name, datatype, raw, shape)
    else:
        if data is None:
            raise InvalidInput(f"input '{name}' has no 'data' (and no binary_data_size)")
        if datatype in RAW_ONLY:
            raise InvalidInput(
                f"input '{name}': receiving {datatype} data via JSON is not supported; "
                "send it with the binary tensor extension"
            )
        values = [check_element(name, datatype, v) for v in _flatten(data)]
    return RequestTensor(name, datatype, list(shape), values, dict(parameters or {}))


def decode_tensor(
    name: str, datatype: str, shape: Sequence[int], data: Any, raw: bytes | None
) -> list[Any]:
    """One tensor's elements as a flat row-major list (BYTES as `bytes` when raw, `str` when
    JSON), checked against its datatype and shape."""
    return decode_input(name, datatype, shape, data, raw).data


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


# ---------------------------------------------------------------- response


def encode_response_header(
    response: InferenceResponse, outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The response document (KServe's key order) around already encoded `outputs`."""
    return {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "parameters": None,
        "outputs": outputs,
    }


def encode_output_json(tensor: OutputTensor) -> dict[str, Any]:
    """An output tensor as a V2 JSON object (KServe key order; BYTES elements as text)."""
    if tensor.datatype in RAW_ONLY:
        raise InvalidInput(
            f"output '{tensor.name}' is {tensor.datatype}, which can only be sent binary: "
            "request it with parameters.binary_data=true"
        )
    data: list[Any]
    if tensor.datatype == "BYTES":
        data = [
            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else _text(v)
            for v in tensor.data
        ]
    else:
        data = encode_json_value(tensor.data)
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
        "parameters": None,
        "data": data,
    }


def _text(item: Any) -> str:
    return item if isinstance(item, str) else str(item)
