"""Protocol-neutral inference requests and responses (Open Inference Protocol V2 semantics).

Every wire representation (V2 JSON, the binary tensor extension, gRPC contents or raw bytes)
decodes into these and encodes from them, so the data plane decides everything once. A
`RequestTensor` checks its own shape against its data when it is built: no codec can hand the
data plane a tensor whose shape and element count disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.errors import InvalidInput
from hf_runtime.types import OutputTensor


def element_count(shape: Sequence[int]) -> int:
    """Number of elements of `shape`; `[]` is a scalar (one element, as KServe's e2e sends)."""
    return math.prod(shape)


def check_shape(name: str, shape: Sequence[int]) -> None:
    if any(dim < 0 for dim in shape):
        raise InvalidInput(f"input '{name}': shape {list(shape)} has a negative dimension")


@dataclass(frozen=True)
class RequestTensor:
    """One input: flat row-major `data` (BYTES elements as `str` or `bytes`)."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_shape(self.name, self.shape)
        expected = element_count(self.shape)
        if len(self.data) != expected:
            raise InvalidInput(
                f"input '{self.name}': shape {list(self.shape)} needs {expected} elements, "
                f"got {len(self.data)}"
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
