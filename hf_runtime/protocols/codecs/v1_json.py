"""KServe V1 bodies: `{"instances": [...]}` in, `{"predictions": [...]}` out.

KServe's quirk for extra tensors (`offset_mapping`): they ride along under "outputs" as V1
output tensors, which have exactly name, shape, datatype and data (no V2 `parameters`).
"""

from __future__ import annotations

from typing import Any

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.json_values import encode_json_value
from hf_runtime.types import OutputTensor, Prediction


def decode_instances(payload: Any) -> list[str]:
    """The texts of a decoded V1 body, or InvalidInput naming what is wrong."""
    if not isinstance(payload, dict):
        raise InvalidInput(
            'the request body must be a JSON object like {"instances": ["text", ...]}'
        )
    if "instances" in payload and "inputs" in payload:
        raise InvalidInput('give either "instances" or "inputs", not both', param="instances")
    key = "instances" if "instances" in payload else "inputs"
    if key not in payload:
        raise InvalidInput(
            'missing "instances": expected {"instances": ["text", ...]}', param="instances"
        )
    instances = payload[key]
    if isinstance(instances, str):  # KServe tokenizes a bare string as one text
        return [instances]
    if not isinstance(instances, list):
        raise InvalidInput(
            f'"{key}" must be a list of strings, got {type(instances).__name__}', param=key
        )
    if not instances:
        raise InvalidInput(f'"{key}" is empty: give at least one text', param=key)
    for index, item in enumerate(instances):
        if not isinstance(item, str):
            raise InvalidInput(
                f'"{key}[{index}]" must be a string, got {type(item).__name__}', param=key
            )
    return instances


def encode_prediction(prediction: Prediction) -> dict[str, Any]:
    body: dict[str, Any] = {"predictions": encode_json_value(prediction.predictions)}
    if len(prediction.tensors) > 1:  # tensors[0] is what "predictions" already says
        body["outputs"] = [encode_output(t) for t in prediction.tensors[1:]]
    return body


def encode_output(tensor: OutputTensor) -> dict[str, Any]:
    data = [
        v.decode("utf-8", errors="replace") if isinstance(v, bytes) else encode_json_value(v)
        for v in tensor.data
    ]
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
        "data": data,
    }
