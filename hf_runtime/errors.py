"""The one error taxonomy of hf-runtime.

Domain code raises these; it never knows about HTTP status codes. The protocol layer
(`hf_runtime.protocols.errors`) maps each kind to a status code and to each protocol's
error body in exactly one table.
"""

from __future__ import annotations

from enum import Enum

PREVIEW_CHARS = 64  # of one client value echoed in an error message


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """A client value as a short, escaped preview for an error message: at most `limit`
    characters of it, control and other unprintable characters escaped, and how much was cut.
    Cheap whatever the value's size (a 1 MB model name, a 2**(2**20) integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"  # repr would be slow, or refused
    text = value if isinstance(value, str) else repr(value)
    head = text[:limit]
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)[:limit]
    if len(text) > limit:
        return f"{escaped}...[{len(text) - limit} more chars]"
    return escaped


class ErrorKind(str, Enum):
    INVALID_INPUT = "invalid_input"  # the client sent something wrong
    UNAUTHENTICATED = "unauthenticated"  # no or wrong API key
    NOT_FOUND = "not_found"  # unknown model (or route object)
    TOO_LARGE = "too_large"  # the request (body, or one input) is over a configured limit
    NOT_READY = "not_ready"  # model still loading, failed to load, or its engine died
    OVERLOADED = "overloaded"  # admission queue is full: back-pressure
    UNSUPPORTED = "unsupported"  # valid request, but this model/task cannot do it
    NOT_IMPLEMENTED = "not_implemented"  # a protocol feature we do not implement (e.g. V2 versions)
    INTERNAL = "internal"  # a bug or a backend failure: never the client's fault


class HFRuntimeError(Exception):
    """Base error. `param` names the offending request field when there is one."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(HFRuntimeError):
    kind = ErrorKind.INVALID_INPUT


class NotFound(HFRuntimeError):
    """An object a route names (a stored response, ...) does not exist."""

    kind = ErrorKind.NOT_FOUND


class ModelNotFound(HFRuntimeError):
    kind = ErrorKind.NOT_FOUND

    def __init__(self, name: str) -> None:
        super().__init__(f"Model with name {preview(name)} does not exist.", param="model")
        self.name = name


class ModelNotReady(HFRuntimeError):
    kind = ErrorKind.NOT_READY

    def __init__(self, name: str) -> None:
        super().__init__(f"Model with name {preview(name)} is not ready.", param="model")
        self.name = name


class ModelLoadFailed(ModelNotReady):
    """The model is FAILED: its load failed, or its engine died. Unlike a bare ModelNotReady
    ("still loading": retry later), the message says why, so nobody polls a dead model.
    `reason` is a sentence such as "Loading failed: OSError: ..." or "Its engine died: ..."."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.message = f"Model with name {preview(name)} cannot serve requests. {reason}"
        self.args = (self.message,)
        self.reason = reason


class Unauthenticated(HFRuntimeError):
    kind = ErrorKind.UNAUTHENTICATED


class TooLarge(HFRuntimeError):
    kind = ErrorKind.TOO_LARGE


class Overloaded(HFRuntimeError):
    kind = ErrorKind.OVERLOADED


class Unsupported(HFRuntimeError):
    kind = ErrorKind.UNSUPPORTED


class NotImplementedFeature(HFRuntimeError):
    kind = ErrorKind.NOT_IMPLEMENTED


class ConfigError(ValueError):
    """Bad configuration: raised at startup, before anything serves. Names the key."""
