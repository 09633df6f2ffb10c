"""Reading API keys from a file (a mounted Kubernetes secret): one key per line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from hf_runtime.errors import ConfigError


def read_key_file(path: str, check: Callable[[list[str]], list[str]]) -> list[str]:
    """The keys in `path`, each validated by `check` (the server section's key rule).
    Raises ConfigError naming the file when it is unreadable, malformed or empty."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"server.api_key_file: cannot read it: {exc}") from None
    try:
        keys = check([line.strip() for line in lines if line.strip()])
    except ValidationError:
        raise ConfigError(
            f"server.api_key_file {path}: each line must be a key of at least 8 printable "
            "ASCII characters without spaces"
        ) from None
    if not keys:
        raise ConfigError(f"server.api_key_file {path} holds no key")
    return keys
