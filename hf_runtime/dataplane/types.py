"""Protocol-neutral inference requests and responses (Open Inference Protocol V2 semantics).

Every wire representation (V2 JSON, the binary tensor extension, gRPC contents or raw bytes)
decodes into these and encodes from them, so the data plane decides everything once. A
`RequestTensor` checks its own shape against its data when it is built: no codec can hand the
data plane a tensor whose shape and element count disagree.

Shapes come from the client and can be absurd (100,000 dimensions of 2**62): they are checked
in O(rank) small-integer arithmetic against what the request actually carries, and only a
short preview of one is ever formatted; the codecs check them before decoding any data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.errors import InvalidInput, preview
from hf_runtime.types import OutputTensor

# numpy's limit on dimensions (NPY_MAXDIMS); no text model takes more than a few.
MAX_RANK = 64
_PREVIEW_DIMS = 6
MAX_ELEMENTS = 2**63 - 1  # V2 dimensions are int64; no request carries anywhere near this


def element_count(shape: Sequence[int]) -> int:
    """Number of elements of `shape`; `[]` is a scalar (one element, as KServe's e2e sends).
    Only for checked shapes (see `checked_element_count`)."""
    return math.prod(shape)


def shape_preview(shape: Sequence[int]) -> str:
    """`shape` as a short string, whatever its rank or dimensions."""
    dims = [preview(dim, 24) for dim in shape[:_PREVIEW_DIMS]]
    if len(shape) > _PREVIEW_DIMS:
        dims.append(f"... ({len(shape)} dimensions)")
    return "[" + ", ".join(dims) + "]"


def check_shape(name: str, shape: Sequence[int]) -> None:
    """Rank and signs: O(rank), nothing formatted but a preview."""
    if len(shape) > MAX_RANK:
        raise InvalidInput(
            f"input '{name}': shape has {len(shape)} dimensions; at most {MAX_RANK} are supported"
        )
    if any(dim < 0 for dim in shape):
        raise InvalidInput(f"input '{name}': shape {shape_preview(shape)} has a negative dimension")


def checked_element_count(name: str, shape: Sequence[int]) -> int:
    """The element count of `shape`, refused (InvalidInput) as soon as the running product
    passes MAX_ELEMENTS: the arithmetic stays on small integers, O(rank)."""
    check_shape(name, shape)
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > MAX_ELEMENTS:
            raise InvalidInput(
                f"input '{preview(name)}': shape {shape_preview(shape)} has more than "
                f"{MAX_ELEMENTS} elements"
            )
    return count


@dataclass(frozen=True)
class RequestTensor:
    """One input: flat row-major `data` (BYTES elements as `str` or `bytes`)."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = checked_element_count(self.name, self.shape)
        if len(self.data) != expected:
            raise InvalidInput(
                f"input '{self.name}': shape {shape_preview(self.shape)} needs {expected} "
                f"elements, got {len(self.data)}"
            )


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; `binary` is its own flag (None: the request's)."""

    name: str
    binary: bool | None = None


@dataclass
class InferenceRequest:
    inputs: list[RequestTensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None  # None or []: every output
    binary_outputs: bool = False  # the request-wide default (V2's binary_data_output)

    def wants_binary(self, output_name: str) -> bool:
        """Send this output as raw bytes? An output's own flag overrides the request-wide
        default (Triton's rule)."""
        for output in self.outputs or ():
            if output.name == output_name and output.binary is not None:
                return output.binary
        return self.binary_outputs


@dataclass
class InferenceResponse:
    model_name: str
    model_version: str | None
    id: str
    outputs: list[OutputTensor]


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: list[str]
