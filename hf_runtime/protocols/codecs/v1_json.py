"""KServe V1 bodies: `{"instances": [...]}` in, `{"predictions": [...]}` out.

Instances are texts, or text pairs to score: `{"text": ..., "text_pair": ...}` objects (the
names transformers' pipelines use for a pair), never a mix.

KServe's quirk for extra tensors (`offset_mapping`): they ride along under "outputs" as V1
output tensors, which have exactly name, shape, datatype and data (no V2 `parameters`).

Bodies are written with orjson, as KServe's own server writes them (non-string dict keys as
strings, floats in their shortest form): `prediction_json` is the hot path's encoder.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

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


def prediction_json(prediction: Prediction) -> bytes:
    """The V1 response body: what `encode_prediction` returns, as JSON bytes, without walking
    every value in Python first (orjson converts numpy values through `_plain` when it meets
    them)."""
    body: dict[str, Any] = {"predictions": prediction.predictions}
    if len(prediction.tensors) > 1 and prediction.v1_outputs:
        body["outputs"] = [encode_output(t) for t in prediction.tensors[1:]]
    return dumps(body)


def dumps(value: Any) -> bytes:
    """`value` as compact JSON bytes, the way KServe writes it (orjson, OPT_NON_STR_KEYS)."""
    try:
        return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # Keys orjson cannot write (numpy scalars, tuples) or integers past 64 bits: made
        # plain first; the stdlib writes what orjson still refuses.
        plain = encode_json_value(value)
        try:
            return orjson.dumps(plain, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """orjson's hook for what it does not write itself: numpy values as Python ones (their
    `tolist()` / `item()`, the values encode_json_value gives)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_prediction(prediction: Prediction) -> dict[str, Any]:
    body: dict[str, Any] = {"predictions": encode_json_value(prediction.predictions)}
    if len(prediction.tensors) > 1 and prediction.v1_outputs:  # tensors[0]: "predictions"
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
