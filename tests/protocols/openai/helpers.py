"""Assertions and a raw ASGI driver shared by the OpenAI API tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Message


def assert_error(
    response: httpx.Response, status: int, param: str | None, contains: str = ""
) -> dict[str, Any]:
    """The response is OpenAI's error shape with this status and param; returns the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == status
    assert error["param"] == param, error
    assert contains in error["message"], error
    return error


def parse_sse(text: str) -> list[Any]:
    """Split an event stream strictly: every event is `data: <payload>\\n\\n`, nothing else.
    Returns the decoded JSON payloads, with the final "[DONE]" kept as a string."""
    assert text.endswith("\n\n"), text[-50:]
    events: list[Any] = []
    for block in text[:-2].split("\n\n"):
        assert block.startswith("data: ") and "\n" not in block, block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    return events


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    # A generous deadline (a wait, not a timing assertion): CI's machine is loaded.
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


class RawCall:
    """Drives an ASGI app by hand, so a test can disconnect mid-response (httpx's ASGI
    transport buffers whole responses and never disconnects)."""

    def __init__(self, app: ASGIApp, path: str, body: dict[str, Any], spec_version: str) -> None:
        self.app = app
        self.path = path
        self.body = json.dumps(body).encode()
        self.spec_version = spec_version
        self.messages: list[Message] = []
        self.disconnected = asyncio.Event()
        self._body_sent = False

    async def receive(self) -> Message:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    def body_chunks(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body" and m["body"]]

    async def run(self, timeout: float = 30.0) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": self.spec_version},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
            "server": ("test", 80),
            "client": ("client", 1234),
        }
        await asyncio.wait_for(self.app(scope, self.receive, self.send), timeout)
