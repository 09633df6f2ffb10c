"""What the server knows about the request being handled, for logs and metrics.

The HTTP gateway opens one `RequestContext` per request; code further in (the registry when a
model is looked up) fills in what only it knows. A context variable carries it, so nothing
per-request is ever stored on a shared object.
"""

from __future__ import annotations

import contextvars
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-request-id"
# A client's id is echoed into logs and headers: keep it short and free of control characters.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


@dataclass
class RequestContext:
    request_id: str
    protocol: str = ""
    model: str = ""  # set once the request named a model that exists (bounded label values)
    backend: str = ""
    arrived: float = field(default_factory=time.perf_counter)  # for time to first token
    # Run when the request ends (its response sent, or it failed): releases what it held,
    # such as its model's in-flight count (an unload waits for that to reach zero).
    on_end: list[Callable[[], None]] = field(default_factory=list)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "hf_runtime_request", default=None
)


def new_request_id(client_value: str | None = None) -> str:
    """The client's `x-request-id` when it is a sane token, else a fresh one."""
    if client_value and _CLIENT_ID.fullmatch(client_value):
        return client_value
    return f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


# A fresh id is a random (version 4) UUID's hex, as `uuid.uuid4().hex` writes it, made from
# `random` rather than the OS's entropy (a system call per request): ids only need to be
# unique, not unguessable. `random` is reseeded in a forked child.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def current_request() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str:
    context = _current.get()
    return context.request_id if context is not None else "-"


def note_model(name: str, backend: str = "") -> None:
    """Record which (existing) model the current request is for; no-op outside a request."""
    context = _current.get()
    if context is not None:
        context.model = name
        context.backend = backend or context.backend


@contextmanager
def request_scope(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
        for release in context.on_end:
            release()
        context.on_end.clear()
