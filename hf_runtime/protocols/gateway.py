"""The HTTP gateway: one ASGI middleware in front of every route the service serves.

Everything here is decided from the request line and headers alone, before any route reads
the body, and answered in the error shape of the protocol the path belongs to:
  - a request id for every request (the client's `x-request-id` when sane), in logs and in the
    response's `x-request-id` header;
  - 503 for new protocol requests while the server drains (SIGTERM), probes stay open; when
    the drain times out, `InFlight.cut_off` ends the requests still running: a response not
    yet started is a 503, an event stream ends with an error event and `data: [DONE]`;
  - 401 without a valid API key on inference and metadata routes (probes stay open; /metrics
    only when `protect_metrics`), keys checked by `api_keys` (shared with gRPC);
  - 413 for a body over `max_request_bytes`, from Content-Length before reading anything, or
    as soon as a streamed body passes the limit;
  - the protocol's JSON 404 for unmatched paths under a prefix the runtime owns;
  - an unexpected exception answers 500 in the protocol's shape and never kills the connection;
  - request duration per model, protocol and status class on /metrics;
  - with `direct` mounts (the BentoML fast path, hf_runtime.fast_path), protocol requests go
    straight to the protocol app that serves them (see protocols.direct_routes), unless
    BentoML's CORS middleware sits between, which must see every request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hf_runtime.errors import ErrorKind
from hf_runtime.observability.context import (
    REQUEST_ID_HEADER,
    RequestContext,
    new_request_id,
    request_scope,
)
from hf_runtime.observability.logs import shorten
from hf_runtime.observability.metrics import observe_request
from hf_runtime.protocols.api_keys import key_error
from hf_runtime.protocols.api_keys import key_matches as key_matches  # re-exported
from hf_runtime.protocols.direct_routes import DirectRoutes
from hf_runtime.protocols.errors import (
    ERROR_TABLE,
    BodyBuilder,
    anthropic_body,
    kserve_body,
    openai_body,
    tei_body,
    tei_status,
)
from hf_runtime.protocols.openai.sse import DONE, event
from hf_runtime.routes import PROBE_PATHS as PROBE_PATHS  # re-exported
from hf_runtime.routes import Surface as Surface  # re-exported
from hf_runtime.routes import surface_for as surface_for  # re-exported

logger = logging.getLogger("hf_runtime.gateway")


def error_body(surface: Surface) -> BodyBuilder:
    """The error body of the protocol a path belongs to (KServe's unless OpenAI's,
    Anthropic's or TEI's)."""
    if surface is Surface.ANTHROPIC:
        return anthropic_body
    if surface is Surface.TEI:
        return tei_body
    return openai_body if surface is Surface.OPENAI else kserve_body


def error_status(surface: Surface, kind: ErrorKind) -> int:
    """The status of `kind` on `surface`: TEI's own, else the runtime's (ERROR_TABLE)."""
    return tei_status(kind) if surface is Surface.TEI else ERROR_TABLE[kind][0]


@dataclass
class GatewaySettings:
    api_keys: Sequence[str] = ()
    protect_metrics: bool = False
    max_request_bytes: int = 8 << 20
    is_draining: Callable[[], bool] = lambda: False


@dataclass
class InFlight:
    """Protocol requests inside the app right now (what a drain waits for), and the means to
    end them all at once when the drain times out (`cut_off`)."""

    count: int = 0
    cut_off_reason: str = ""  # set by cut_off: what the requests it ends are told
    _scopes: set[anyio.CancelScope] = field(default_factory=set)

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[anyio.CancelScope]:
        """A scope around one HTTP request's app, which `cut_off` cancels."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def cut_off(self, reason: str) -> int:
        """Cancel every HTTP request still in the app (their gateway answers `reason`, the
        protocol's way); returns how many."""
        self.cut_off_reason = reason
        scopes = list(self._scopes)
        for scope in scopes:
            scope.cancel()
        return len(scopes)


class RequestTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit; every protocol app maps
    HTTPException to its own error shape, so the route answers 413 itself."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body is larger than the server's limit of {limit} bytes (max_request_bytes)",
            headers={"Connection": "close"},
        )


class Gateway:
    """Pure ASGI middleware (no body buffering, no extra task); see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        settings: GatewaySettings,
        in_flight: InFlight,
        direct: Sequence[tuple[str, ASGIApp]] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.in_flight = in_flight
        # The fast path: (mount path, protocol app) in mounting order, or () for none.
        self.direct = (
            DirectRoutes(direct) if direct and not isinstance(app, CORSMiddleware) else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        surface = surface_for(scope["path"])
        context = RequestContext(new_request_id(headers.get(REQUEST_ID_HEADER)), surface.value)
        with request_scope(context):
            await self._handle(scope, receive, send, headers, surface, context)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        surface: Surface,
        context: RequestContext,
    ) -> None:
        started = context.arrived
        response = _ResponseTracker(send, context.request_id, surface)
        rejection = self._rejection(surface, headers)
        if rejection is not None:
            await rejection(scope, receive, response.send)
        else:
            app = self.app
            if surface.is_protocol:
                self.in_flight.count += 1
                resolved = self.direct.resolve(scope) if self.direct is not None else None
                if resolved is not None:
                    app, mount_scope, lean = resolved
                    if lean is not None:  # an encoder hot-path route: called straight
                        app, mount_scope = lean, lean.scope_keys
                    scope = {**scope, **mount_scope}
            try:
                if surface.is_protocol:
                    with self.in_flight.cancellable() as cancellable:
                        await app(scope, self._limited(receive), response.send)
                    if cancellable.cancelled_caught:
                        await self._end_cut_off(scope, response)
                else:
                    await app(scope, self._limited(receive), response.send)
            except Exception as exc:
                await self._after_exception(exc, scope, response)
            finally:
                if surface.is_protocol:
                    self.in_flight.count -= 1
        if surface.is_protocol:
            status = response.status or 500
            observe_request(context.model, surface.value, status, time.perf_counter() - started)

    def _rejection(self, surface: Surface, headers: Headers) -> JSONResponse | None:
        """The answer for a request refused before routing, or None to let it through."""
        settings = self.settings
        if surface.is_protocol and settings.is_draining():
            return _error(
                surface,
                ErrorKind.NOT_READY,
                "the server is shutting down and takes no new requests; retry on another replica",
                {"Connection": "close", "Retry-After": "1"},
            )
        protected = surface.is_protocol or (surface is Surface.METRICS and settings.protect_metrics)
        refused = key_error(headers, settings.api_keys) if protected else None
        if refused is not None:
            challenge = {"WWW-Authenticate": "Bearer"}
            return _error(surface, ErrorKind.UNAUTHENTICATED, refused, challenge)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(surface, ErrorKind.INVALID_INPUT, "Content-Length is not a number")
            if int(length) > settings.max_request_bytes:
                return _error(
                    surface,
                    ErrorKind.TOO_LARGE,
                    f"request body of {int(length)} bytes is larger than the server's limit of "
                    f"{settings.max_request_bytes} bytes (max_request_bytes)",
                    {"Connection": "close"},
                )
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit = self.settings.max_request_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        return limited_receive

    async def _end_cut_off(self, scope: Scope, response: _ResponseTracker) -> None:
        """End a request the drain cut off, the protocol's way: 503 when nothing was sent yet;
        an event stream's error event and `data: [DONE]`; else the end of the body."""
        reason = self.in_flight.cut_off_reason
        with contextlib.suppress(OSError):  # the client may be gone already
            if response.status is None:
                answer = _error(
                    response.surface, ErrorKind.NOT_READY, reason, {"Connection": "close"}
                )
                await answer(scope, _no_body, response.send)
            elif not response.complete:
                tail = b""
                if response.event_stream:
                    tail = (event(openai_body(ErrorKind.NOT_READY, reason)) + DONE).encode()
                await response.send({"type": "http.response.body", "body": tail})

    async def _after_exception(
        self, exc: Exception, scope: Scope, response: _ResponseTracker
    ) -> None:
        if response.status is None:
            if isinstance(exc, HTTPException):  # e.g. RequestTooLarge raised outside any route
                kind = ErrorKind.TOO_LARGE if exc.status_code == 413 else ErrorKind.INVALID_INPUT
                await _error(response.surface, kind, str(exc.detail), exc.headers)(
                    scope, _no_body, response.send
                )
                return
            logger.exception("unhandled error on %s", shorten(scope["path"], 200), exc_info=exc)
            await _error(
                response.surface,
                ErrorKind.INTERNAL,
                f"Internal server error: {type(exc).__name__}",
            )(scope, _no_body, response.send)
        elif not response.complete:
            raise exc  # a half-sent response cannot be mended: let the server close it
        # Otherwise the app already answered (and logged); re-raising would make the server
        # drop a keep-alive connection that is in a perfectly good state.


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _error(
    surface: Surface, kind: ErrorKind, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    status = error_status(surface, kind)
    body = error_body(surface)(kind, message, None)
    return JSONResponse(body, status_code=status, headers=headers)


class _ResponseTracker:
    """Wraps `send`: records the status, adds x-request-id, rewrites plain-text 404s."""

    def __init__(self, send: Send, request_id: str, surface: Surface) -> None:
        self._send = send
        self._request_id = request_id.encode()
        self.surface = surface
        self.status: int | None = None
        self.complete = False
        self.event_stream = False  # a text/event-stream response (OpenAI's streams)
        self._swallow_body = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            raw = list(message.get("headers", []))
            if self.status == 404 and self.surface.is_protocol and _is_plain_text(raw):
                # The router found no route: answer the protocol's JSON 404 instead.
                self._swallow_body = True
                return
            raw.append((REQUEST_ID_HEADER.encode(), self._request_id))
            message = {**message, "headers": raw}
            self.event_stream = _content_type(raw).startswith(b"text/event-stream")
        elif message["type"] == "http.response.body":
            if not message.get("more_body", False):
                self.complete = True
            if self._swallow_body:
                if self.complete:
                    await self._send_not_found()
                return
        await self._send(message)

    async def _send_not_found(self) -> None:
        status = error_status(self.surface, ErrorKind.NOT_FOUND)
        response = JSONResponse(
            error_body(self.surface)(ErrorKind.NOT_FOUND, "Not Found: no such route", None),
            status_code=status,
            headers={REQUEST_ID_HEADER: self._request_id.decode()},
        )
        start = {"type": "http.response.start", "status": status, "headers": response.raw_headers}
        await self._send(start)
        await self._send({"type": "http.response.body", "body": response.body})


def _content_type(raw_headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in raw_headers:
        if name.lower() == b"content-type":
            return value
    return b""


def _is_plain_text(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    return _content_type(raw_headers).startswith(b"text/plain")
