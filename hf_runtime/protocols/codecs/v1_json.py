"""KServe V1 bodies: `{"instances": [...]}` in, `{"predictions": [...]}` out.

Instances are texts, or text pairs to score: `{"text": ..., "text_pair": ...}` objects (the
names transformers' pipelines use for a pair), never a mix.

KServe's quirk for extra tensors (`offset_mapping`): they ride along under "outputs" as V1
output tensors, which have exactly name, shape, datatype and data (no V2 `parameters`).
"""

from __future__ import annotations

from typing import Any

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.json_values import encode_json_value
from hf_runtime.types import PAIR_INPUTS, OutputTensor, Prediction, TextPair


def decode_instances(payload: Any) -> list[str] | list[TextPair]:
    """The texts (or text pairs) of a decoded V1 body, or InvalidInput naming what is wrong."""
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
    if isinstance(instances[0], dict):
        return [_pair(key, index, item) for index, item in enumerate(instances)]
    for index, item in enumerate(instances):
        if not isinstance(item, str):
            raise InvalidInput(
                f'"{key}[{index}]" must be a string, got {type(item).__name__}', param=key
            )
    return instances


def decode_parameters(payload: Any) -> dict[str, Any] | None:
    """The optional top-level `parameters` object beside `instances` (output options such as
    top_k; the data plane validates its keys and values)."""
    if not isinstance(payload, dict) or payload.get("parameters") is None:
        return None
    parameters = payload["parameters"]
    if not isinstance(parameters, dict):
        raise InvalidInput(
            f'"parameters" must be an object, got {type(parameters).__name__}', param="parameters"
        )
    return parameters


def _pair(key: str, index: int, item: Any) -> TextPair:
    first, second = PAIR_INPUTS
    if not isinstance(item, dict):
        raise InvalidInput(
            f'"{key}[{index}]" must be a {{"{first}", "{second}"}} object like the first '
            f"instance, got {type(item).__name__}",
            param=key,
        )
    values = [item.get(first), item.get(second)]
    if not all(isinstance(value, str) for value in values) or len(item) != 2:
        raise InvalidInput(
            f'"{key}[{index}]" must be an object with exactly two strings, "{first}" and '
            f'"{second}" (a text pair to score)',
            param=key,
        )
    return TextPair(*values)


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
