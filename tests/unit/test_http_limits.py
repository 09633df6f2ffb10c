"""HTTP framing limits on uvicorn's httptools protocol (hf_runtime.http_limits), over raw
sockets against a real uvicorn server in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hf_runtime import http_limits


async def hello(_: object) -> JSONResponse:
    return JSONResponse({"hello": True})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    http_limits.install()
    http_limits.install()  # idempotent
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        Starlette(routes=[Route("/", hello)]), http="httptools", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_url_over_64_kb_is_414_json(port: int) -> None:
    target = b"/" + b"a" * (http_limits.MAX_URL_BYTES + 10)
    status, body = status_and_body(
        exchange(port, b"GET " + target + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    )
    assert status == 414 and "longer than 65536 bytes" in str(body["error"])


@pytest.mark.parametrize(
    "request_",
    [b"BLAH\x00 / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
     b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
)  # fmt: skip
def test_framing_errors_are_json_400(port: int, request_: bytes) -> None:
    status, body = status_and_body(exchange(port, request_))
    assert status == 400 and body == {"error": "Invalid HTTP request received."}


def test_unfinished_headers_are_closed_with_408(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_limits, "HEADER_TIMEOUT_S", 0.5)
    status, body = status_and_body(exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n"))
    assert status == 408 and "did not arrive" in str(body["error"])


def test_a_silent_connection_is_closed(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_limits, "HEADER_TIMEOUT_S", 0.5)
    assert exchange(port, b"") == b""


def test_keep_alive_requests_still_work(port: int) -> None:
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    answer = exchange(port, request + request[:-2] + b"connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 2
