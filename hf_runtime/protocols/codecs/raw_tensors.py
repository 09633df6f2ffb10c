"""Raw tensor bytes, as V2's binary tensor extension and gRPC's raw_*_contents carry them.

Numeric tensors are little-endian row-major; BYTES elements are each a 4-byte little-endian
length followed by that many bytes (Triton's convention, which tritonclient serialises).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_runtime.dataplane.types import checked_element_count
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.datatypes import NUMPY_DTYPES, check_datatype


def decode_binary_tensor(
    name: str, datatype: str, raw: bytes, shape: Sequence[int] | None = None
) -> list[Any]:
    """Raw tensor bytes -> flat list (BYTES -> list of bytes; BF16/FP16 -> floats). With
    `shape`, its rank and element count are checked first, in O(rank); the decoded elements
    (bounded by the bytes sent) must then match it (see RequestTensor)."""
    check_datatype(name, datatype)
    if shape is not None:
        checked_element_count(name, shape)
    if datatype == "BYTES":
        return decode_bytes_elements(name, raw)
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': {len(raw)} bytes is not a whole number of {datatype} elements"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    return array.tolist()


def decode_bytes_elements(name: str, raw: bytes) -> list[bytes]:
    """Split a raw BYTES tensor: each element is a uint32 LE length then that many bytes."""
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


def encode_binary_tensor(datatype: str, data: Sequence[Any]) -> bytes:
    """Flat data -> raw little-endian bytes of `datatype`."""
    if datatype == "BYTES":
        return encode_bytes_elements(data)
    if datatype == "BF16":
        bits = np.asarray(data, dtype="<f4").view("<u4")
        return (bits >> 16).astype("<u2").tobytes()
    return np.asarray(data, dtype=NUMPY_DTYPES[datatype]).tobytes()


def encode_bytes_elements(items: Sequence[Any]) -> bytes:
    """BYTES elements -> length-prefixed bytes. Non-string items are sent as `str(item)`,
    KServe's V2 representation of Python objects."""
    chunks: list[bytes] = []
    for item in items:
        data = bytes_element(item)
        chunks.append(struct.pack("<I", len(data)))
        chunks.append(data)
    return b"".join(chunks)


def bytes_element(item: Any) -> bytes:
    """One BYTES output element as bytes (text as UTF-8, other objects as their str)."""
    if isinstance(item, bytes):
        return item
    return (item if isinstance(item, str) else str(item)).encode("utf-8")
