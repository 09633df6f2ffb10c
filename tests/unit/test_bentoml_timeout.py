"""InlineTimeout answers exactly as BentoML's TimeoutMiddleware: the app's own response in
time, BentoML's 504 when the response has not started by the timeout, and a response already
started is never cut; other cancellations still reach the request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.types import Message, Receive, Scope, Send

from hf_runtime.bentoml_timeout import InlineTimeout, _inline_class

Inline = _inline_class(TimeoutMiddleware)
SCOPE = {"type": "http", "method": "GET", "path": "/x", "headers": []}


def _app(before_start: float, after_start: float = 0.0) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(before_start)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(after_start)
        await send({"type": "http.response.body", "body": b"done"})

    return app


async def _call(middleware: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(dict(SCOPE), receive, send)
    return sent


@pytest.mark.parametrize(
    ("before_start", "after_start"),
    [(0.0, 0.0), (0.2, 0.0), (0.0, 0.2)],
    ids=["in time", "too late to start", "started in time, finished late"],
)
def test_answers_as_bentoml_does(before_start: float, after_start: float) -> None:
    ours = asyncio.run(_call(Inline(_app(before_start, after_start), timeout=0.1)))
    theirs = asyncio.run(_call(TimeoutMiddleware(_app(before_start, after_start), timeout=0.1)))
    assert ours == theirs
    if before_start:
        assert ours[0]["status"] == 504
        assert b"Not able to process the request in 0.1 seconds" in ours[1]["body"]


def test_other_cancellations_reach_the_request() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(_call(Inline(_app(10.0), timeout=5.0)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_install_swaps_bentomls_class_keeping_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from bentoml._internal.server.http import traffic

    from hf_runtime import bentoml_timeout

    monkeypatch.setattr(traffic, "TimeoutMiddleware", TimeoutMiddleware)
    bentoml_timeout.install()
    bentoml_timeout.install()  # once only
    installed = traffic.TimeoutMiddleware
    assert issubclass(installed, InlineTimeout) and issubclass(installed, TimeoutMiddleware)
    assert installed.__name__ == "TimeoutMiddleware" and installed.__mro__[2] is TimeoutMiddleware
