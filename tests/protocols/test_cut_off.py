"""When the drain times out, the gateway ends what still runs the protocol's way: an OpenAI
stream with an error event and `data: [DONE]`, a request not yet answered with a 503 in its
protocol's shape, and the in-flight count falls to zero (tests/runtime/test_drain.py covers
the timing; tests/e2e/test_faults_e2e.py the whole server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hf_runtime.protocols.gateway import GatewaySettings, InFlight
from tests.fakes import FakeRegistry, FakeServedModel, FakeTextGenerator
from tests.protocols.conftest import LiveServer
from tests.served_app import make_served_app

REASON = "the server is shutting down: drain timeout passed; retry it"
SLOW = {"min_tokens": 200, "max_tokens": 200}


class LoopRecorder:
    """The app, remembering the server's event loop (cut_off runs on it, as the drain does)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@pytest.fixture
def served() -> Iterator[tuple[LiveServer, InFlight, LoopRecorder]]:
    generator = FakeTextGenerator(step_delay=0.05)
    registry = FakeRegistry([FakeServedModel("gpt", "text_generation", generator=generator)])
    in_flight = InFlight()
    app = LoopRecorder(make_served_app(registry, GatewaySettings(), in_flight))
    with LiveServer(registry, app=app) as live:
        yield live, in_flight, app


def test_cut_off_ends_streams_and_answers_open_requests(
    served: tuple[LiveServer, InFlight, LoopRecorder],
) -> None:
    live, in_flight, app = served
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], **SLOW}
    with httpx.Client(base_url=live.base_url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(http.post, "/v1/chat/completions", json=chat)
        with http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            while in_flight.count < 2:
                time.sleep(0.01)
            assert app.loop is not None
            app.loop.call_soon_threadsafe(in_flight.cut_off, REASON)
            events = [line for line in lines if line.startswith("data: ")]
        answered = waiting.result(timeout=30)
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["message"] == REASON and error["code"] == 503
    assert answered.status_code == 503
    assert answered.json()["error"]["message"] == REASON
    deadline = time.monotonic() + 30
    while in_flight.count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert in_flight.count == 0
