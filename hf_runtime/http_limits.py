"""HTTP/1.1 framing limits on uvicorn, the server `bentoml serve` runs (with httptools).

uvicorn has no header timeout (a connection that never finishes its headers, or sends nothing,
is kept open forever: slowloris), answers an unparseable request with a plain-text 400, and
has no URL length limit of its own. `install()` (called by service.py before BentoML builds the
server) adds to uvicorn's httptools protocol:
  - HEADER_TIMEOUT_S: a connection must complete each request's request line and headers within
    this many seconds of opening (or of its previous response); otherwise it gets 408 and is
    closed (an idle connection is just closed). Bodies are not timed here: their size is
    bounded by max_request_bytes, and a client that stops mid-body is a disconnect.
  - MAX_URL_BYTES: a longer request target gets 414 URI Too Long (RFC 9112 section 3).
  - every framing error gets a JSON 400 in the KServe shape instead of plain text.
Idle keep-alive connections are closed by uvicorn after 5 s (`bentoml serve
--timeout-keep-alive`). All of these answers close the connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("hf_runtime.http")

HEADER_TIMEOUT_S = 10.0
MAX_URL_BYTES = 64 * 1024

_INSTALLED = "_hf_runtime_limits"


class UrlTooLong(Exception):
    """Raised from the parser's URL callback: stops parsing; answered 414."""


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with a KServe-shaped JSON body that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


TOO_LONG = error_response(
    414, "URI Too Long", f"the request target is longer than {MAX_URL_BYTES} bytes"
)
TIMED_OUT = error_response(
    408,
    "Request Timeout",
    f"the request line and headers did not arrive within {HEADER_TIMEOUT_S:g} s",
)


def install() -> None:
    """Patch uvicorn's httptools protocol class (once per process; see the module)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn runs h11, which bounds headers itself
        return
    if getattr(HttpToolsProtocol, _INSTALLED, False):
        return
    _patch(HttpToolsProtocol)
    setattr(HttpToolsProtocol, _INSTALLED, True)


def _patch(protocol: Any) -> None:
    connection_made = protocol.connection_made
    connection_lost = protocol.connection_lost
    on_message_begin = protocol.on_message_begin
    on_url = protocol.on_url
    on_headers_complete = protocol.on_headers_complete
    on_response_complete = protocol.on_response_complete

    def arm(self: Any) -> None:
        disarm(self)
        self._hf_header_timer = self.loop.call_later(HEADER_TIMEOUT_S, headers_timed_out, self)

    def disarm(self: Any) -> None:
        timer = getattr(self, "_hf_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._hf_header_timer = None

    def headers_timed_out(self: Any) -> None:
        self._hf_header_timer = None
        if self.transport.is_closing():
            return
        if getattr(self, "_hf_in_headers", False):  # a request began: tell the client why
            self.transport.write(TIMED_OUT)
        self.transport.close()

    def patched_connection_made(self: Any, transport: Any) -> None:
        connection_made(self, transport)
        self._hf_in_headers = False
        arm(self)

    def patched_connection_lost(self: Any, exc: Exception | None) -> None:
        disarm(self)
        connection_lost(self, exc)

    def patched_on_message_begin(self: Any) -> None:
        on_message_begin(self)
        self._hf_in_headers = True
        self._hf_url_too_long = False
        if getattr(self, "_hf_header_timer", None) is None:
            arm(self)

    def patched_on_url(self: Any, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_URL_BYTES:
            self._hf_url_too_long = True
            raise UrlTooLong
        on_url(self, url)

    def patched_on_headers_complete(self: Any) -> None:
        self._hf_in_headers = False
        disarm(self)
        on_headers_complete(self)

    def patched_on_response_complete(self: Any) -> None:
        on_response_complete(self)
        if not self.transport.is_closing() and not self.pipeline:
            arm(self)  # the next request's headers are timed from now (keep-alive closes first)

    def send_400_response(self: Any, msg: str) -> None:
        # uvicorn's answer to any parser error, ours (UrlTooLong) included.
        too_long = getattr(self, "_hf_url_too_long", False)
        self.transport.write(TOO_LONG if too_long else error_response(400, "Bad Request", msg))
        self.transport.close()

    protocol.connection_made = patched_connection_made
    protocol.connection_lost = patched_connection_lost
    protocol.on_message_begin = patched_on_message_begin
    protocol.on_url = patched_on_url
    protocol.on_headers_complete = patched_on_headers_complete
    protocol.on_response_complete = patched_on_response_complete
    protocol.send_400_response = send_400_response
