"""Python values as JSON can carry them: what KServe V1 predictions and V2 JSON data need."""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def encode_json_value(value: Any) -> Any:
    """`value` with every dict key a string and numpy values made plain Python.

    KServe serialises with orjson OPT_NON_STR_KEYS, so `{0: 0.1}` goes out as `{"0": 0.1}`;
    the stdlib encoder would do the same for ints but fails on numpy scalars and tuple keys.
    """
    if isinstance(value, dict):
        return {_json_key(k): encode_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)  # "true" / "false" / "null", as orjson writes them
    if isinstance(key, np.generic):
        key = key.item()
    return str(key)
