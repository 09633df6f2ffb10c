"""Open Inference Protocol V2 tensor codecs: JSON tensors, BYTES strings, binary tensor data.

Stateless `decode_*` / `encode_*` pairs (MLServer style). Every decode failure raises
`InvalidInput` naming the tensor, so routers answer 400 and never 500.

Binary tensor extension (Triton's): a request or response body is a JSON header of
`Inference-Header-Content-Length` bytes followed by the raw tensors, in tensor order, each
declared by `parameters.binary_data_size`. Numeric tensors are little-endian row-major;
BYTES elements are a 4-byte little-endian length followed by the bytes.
"""

from __future__ import annotations

import json
import math
import reprlib
import struct
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_runtime.errors import InvalidInput
from hf_runtime.types import OutputTensor

HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"

DATATYPES = (
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
)  # fmt: skip

# Little-endian numpy dtypes of the fixed-size datatypes. BF16 has no numpy dtype: it is
# carried as the upper 16 bits of a float32.
_NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BF16": "<u2",
}  # fmt: skip

_INT_RANGES: dict[str, tuple[int, int]] = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in _NUMPY_DTYPES.items()
    if name.startswith(("INT", "UINT"))
}

_FP32_MAX = float(np.finfo(np.float32).max)

# Half precision cannot be told apart from FP32 in JSON numbers; KServe refuses it too.
_BINARY_ONLY = ("FP16", "BF16")


# ---------------------------------------------------------------- JSON values


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


# ---------------------------------------------------------------- request body


def split_binary_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split a request body into (JSON header, binary tail) using the header length value."""
    if header_length is None:
        return body, b""
    value = header_length.strip()
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput(
            f"{HEADER_LENGTH_HEADER} must be a non-negative integer, got {header_length!r}"
        )
    length = int(value)
    if length > len(body):
        raise InvalidInput(
            f"{HEADER_LENGTH_HEADER} is {length} but the request body has only {len(body)} bytes"
        )
    return body[:length], body[length:]


def element_count(shape: Sequence[int]) -> int:
    """Number of elements of `shape`; `[]` is a scalar (one element, as KServe's e2e sends)."""
    return math.prod(shape)


def check_shape(name: str, shape: Sequence[int]) -> None:
    if any(dim < 0 for dim in shape):
        raise InvalidInput(f"input '{name}': shape {list(shape)} has a negative dimension")


def decode_tensor(
    name: str, datatype: str, shape: Sequence[int], data: Any, raw: bytes | None
) -> list[Any]:
    """One request tensor as a flat row-major Python list (BYTES elements as `bytes` when raw,
    `str` when JSON). Exactly one of `data` (JSON) and `raw` (binary) must be given."""
    if datatype not in DATATYPES:
        raise InvalidInput(f"invalid datatype {datatype!r} in input '{name}'")
    check_shape(name, shape)
    if raw is not None:
        if data is not None:
            raise InvalidInput(f"input '{name}' has both 'data' and binary_data_size")
        values = decode_binary_tensor(name, datatype, raw)
    else:
        if data is None:
            raise InvalidInput(f"input '{name}' has no 'data' (and no binary_data_size)")
        if datatype in _BINARY_ONLY:
            raise InvalidInput(
                f"input '{name}': receiving {datatype} data via JSON is not supported; "
                "send it with the binary tensor extension"
            )
        values = [_check_json_element(name, datatype, v) for v in _flatten(data)]
    expected = element_count(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} needs {expected} elements, got {len(values)}"
        )
    return values


def _flatten(data: Any) -> list[Any]:
    """JSON tensor data may be flat or nested row-major (the V2 spec allows both)."""
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


def _check_json_element(name: str, datatype: str, value: Any) -> Any:
    ok: bool
    if datatype == "BYTES":
        ok = isinstance(value, str)
    elif datatype == "BOOL":
        ok = isinstance(value, bool)
    elif datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    else:  # FP32 / FP64
        ok = _is_float_element(value, _FP32_MAX if datatype == "FP32" else sys.float_info.max)
    if not ok:
        # reprlib: a bounded repr, however large the value the client sent.
        raise InvalidInput(
            f"input '{name}': {reprlib.repr(value)} is not a valid {datatype} element"
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


def decode_binary_tensor(name: str, datatype: str, raw: bytes) -> list[Any]:
    """Raw tensor bytes -> flat list (BYTES -> list of bytes; BF16/FP16 -> floats)."""
    if datatype == "BYTES":
        return decode_bytes_elements(name, raw)
    dtype = np.dtype(_NUMPY_DTYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': {len(raw)} bytes is not a whole number of {datatype} elements"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    return array.tolist()


def decode_bytes_elements(name: str, raw: bytes) -> list[bytes]:
    """Split a binary BYTES tensor: each element is a uint32 LE length then that many bytes."""
    items: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"input '{name}': truncated BYTES element length at byte {offset}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > end:
            raise InvalidInput(
                f"input '{name}': BYTES element of {size} bytes overruns the tensor data"
            )
        items.append(raw[offset : offset + size])
        offset += size
    return items


def decode_text_elements(name: str, values: Sequence[Any]) -> list[str]:
    """BYTES elements (str from JSON, bytes from binary) as text; invalid UTF-8 is a 400."""
    texts: list[str] = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"input '{name}': element {index} is not UTF-8: {exc}") from exc
        texts.append(value)
    return texts


# ---------------------------------------------------------------- response body


def encode_bytes_elements(items: Sequence[Any]) -> bytes:
    """BYTES elements -> length-prefixed binary. Non-string items are sent as `str(item)`,
    KServe's V2 representation of Python objects."""
    chunks: list[bytes] = []
    for item in items:
        data = item if isinstance(item, bytes) else _text(item).encode("utf-8")
        chunks.append(struct.pack("<I", len(data)))
        chunks.append(data)
    return b"".join(chunks)


def _text(item: Any) -> str:
    return item if isinstance(item, str) else str(item)


def encode_binary_tensor(datatype: str, data: Sequence[Any]) -> bytes:
    """Flat data -> raw little-endian bytes of `datatype`."""
    if datatype == "BYTES":
        return encode_bytes_elements(data)
    if datatype == "BF16":
        bits = np.asarray(data, dtype="<f4").view("<u4")
        return (bits >> 16).astype("<u2").tobytes()
    return np.asarray(data, dtype=_NUMPY_DTYPES[datatype]).tobytes()


def encode_output_json(tensor: OutputTensor) -> dict[str, Any]:
    """An output tensor as a V2 JSON object (KServe key order; BYTES elements as text)."""
    if tensor.datatype in _BINARY_ONLY:
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


def encode_output_binary(tensor: OutputTensor) -> tuple[dict[str, Any], bytes]:
    """An output tensor as (JSON header entry without data, raw bytes)."""
    raw = encode_binary_tensor(tensor.datatype, tensor.data)
    header = {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return header, raw


def encode_binary_body(header: dict[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, int]:
    """JSON header + raw chunks -> (body, header length for Inference-Header-Content-Length)."""
    head = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    head_bytes = head.encode("utf-8")
    return head_bytes + b"".join(chunks), len(head_bytes)
