"""V2 request parameters that change how a response is encoded (Triton's names)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hf_runtime.errors import InvalidInput

BINARY_DATA_OUTPUT = "binary_data_output"  # request-wide: every output binary
BINARY_DATA = "binary_data"  # per requested output
BINARY_DATA_SIZE = "binary_data_size"  # per tensor: its bytes in the binary tail


def binary_flag(parameters: Mapping[str, Any] | None, key: str) -> bool | None:
    """The boolean parameter `key`, None when absent; anything but a boolean is a 400."""
    if not parameters or key not in parameters:
        return None
    value = parameters[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"parameter {key} must be true or false, got {value!r}")
    return value
