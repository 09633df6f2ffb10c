"""V2's binary tensor extension (Triton's), over HTTP.

A request or response body is a JSON header of `Inference-Header-Content-Length` bytes
followed by the raw tensors (see `raw_tensors`), in tensor order, each declared by its
`parameters.binary_data_size`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.codecs.parameters import BINARY_DATA_SIZE
from hf_runtime.protocols.codecs.raw_tensors import encode_binary_tensor
from hf_runtime.types import OutputTensor

HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"


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


class BinaryTail:
    """The binary part of a request body, handed to the inputs in order as they are decoded;
    `finish` checks that nothing is left over."""

    def __init__(self, tail: bytes) -> None:
        self._tail = tail
        self._offset = 0

    def take(self, name: str, parameters: Mapping[str, Any] | None) -> bytes | None:
        """Input `name`'s bytes (its `binary_data_size`), None when it carries JSON data."""
        size = (parameters or {}).get(BINARY_DATA_SIZE)
        if size is None:
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
        start, left = self._offset, len(self._tail) - self._offset
        if size > left:
            raise InvalidInput(
                f"input '{name}': binary_data_size is {size} but only {left} bytes of binary "
                f"data remain (truncated body or wrong {HEADER_LENGTH_HEADER})"
            )
        self._offset += size
        return self._tail[start : self._offset]

    def finish(self) -> None:
        left = len(self._tail) - self._offset
        if left:
            raise InvalidInput(
                f"{left} bytes of binary data follow the inputs that no input declares with "
                "binary_data_size"
            )


def encode_output_binary(tensor: OutputTensor) -> tuple[dict[str, Any], bytes]:
    """An output tensor as (JSON header entry without data, raw bytes)."""
    raw = encode_binary_tensor(tensor.datatype, tensor.data)
    header = {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
        "parameters": {BINARY_DATA_SIZE: len(raw)},
    }
    return header, raw


def encode_binary_body(header: dict[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, int]:
    """JSON header + raw chunks -> (body, header length for Inference-Header-Content-Length)."""
    head = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    head_bytes = head.encode("utf-8")
    return head_bytes + b"".join(chunks), len(head_bytes)
