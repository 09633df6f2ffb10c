"""Open Inference Protocol V2 datatypes: their numpy layouts and which values they hold."""

from __future__ import annotations

import math
import reprlib
import sys
from typing import Any

import numpy as np

from hf_runtime.errors import InvalidInput, preview

DATATYPES = (
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
)  # fmt: skip

# Little-endian numpy dtypes of the fixed-size datatypes. BF16 has no numpy dtype: it is
# carried as the upper 16 bits of a float32.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BF16": "<u2",
}  # fmt: skip

INT_RANGES: dict[str, tuple[int, int]] = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in NUMPY_DTYPES.items()
    if name.startswith(("INT", "UINT"))
}

_FP32_MAX = float(np.finfo(np.float32).max)

# Half precision has no typed representation in JSON numbers or gRPC contents (it could not be
# told apart from FP32); KServe refuses it too. It travels as raw bytes only.
RAW_ONLY = ("FP16", "BF16")


def check_datatype(name: str, datatype: str) -> None:
    if datatype not in DATATYPES:
        raise InvalidInput(f"invalid datatype '{preview(datatype)}' in input '{preview(name)}'")


def check_element(name: str, datatype: str, value: Any) -> Any:
    """`value` when it is a valid element of `datatype` (a typed, not raw, element), else
    InvalidInput echoing it bounded."""
    ok: bool
    if datatype == "BYTES":
        ok = isinstance(value, (str, bytes))
    elif datatype == "BOOL":
        ok = isinstance(value, bool)
    elif datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    else:  # FP32 / FP64
        ok = _is_float_element(value, _FP32_MAX if datatype == "FP32" else sys.float_info.max)
    if not ok:
        # reprlib: a bounded repr, however large the value the client sent.
        raise InvalidInput(
            f"input '{preview(name)}': {reprlib.repr(value)} is not a valid {datatype} element"
        )
    return value


def _is_float_element(value: Any, largest: float) -> bool:
    """A finite number the datatype can hold: NaN, inf (Python's json reads them) and values
    that overflow it (1e39 for FP32) would reach the model as inf or NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and abs(value) <= largest
    except OverflowError:  # an int too large for any float
        return False
