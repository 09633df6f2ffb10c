"""BentoML's request timeout (`traffic.timeout`) without a task per request.

BentoML's TimeoutMiddleware runs every request's app in a task of its own beside a future
and a timer it never cancels: each request leaves a `traffic.timeout`-long timer (600 s here)
in the event loop, hundreds of thousands of them under load. With the BentoML fast path
(hf_runtime.fast_path), `install()` (service.py, before BentoML builds its app) makes BentoML
build `InlineTimeout` instead: the same timeout (it runs until the response starts), the same
504 answer and the same cancellation of the app, with the app running in the request's own
task and the timer cancelled as soon as the response starts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send


def install() -> None:
    """Make BentoML build its timeout middleware as InlineTimeout."""
    from bentoml._internal.server.http import traffic

    if not issubclass(traffic.TimeoutMiddleware, InlineTimeout):
        traffic.TimeoutMiddleware = _inline_class(traffic.TimeoutMiddleware)


def _inline_class(base: type) -> type:
    class Inline(InlineTimeout, base):  # type: ignore[misc, valid-type]
        pass

    Inline.__name__ = base.__name__  # BentoML and tests name middlewares by class name
    return Inline


class InlineTimeout:
    """Mixed into BentoML's TimeoutMiddleware (its `app` and `timeout`): ends the app with a
    504 when it has not started its response `timeout` seconds after the request came."""

    app: Any
    timeout: float

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()  # cancellations asked for by others, before ours
        started = expired = False

        def expire() -> None:
            nonlocal expired
            if not started:
                expired = True
                task.cancel()

        timer = asyncio.get_running_loop().call_later(self.timeout, expire)

        async def timed_send(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                timer.cancel()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except asyncio.CancelledError:
            # Ours alone: answer as BentoML does; anyone else's goes on up.
            if not expired or task.uncancel() > cancelling:
                raise
            await _timed_out(self.timeout)(scope, receive, send)
        finally:
            timer.cancel()


def _timed_out(timeout: float) -> JSONResponse:
    return JSONResponse(
        {"error": f"Not able to process the request in {timeout} seconds"}, status_code=504
    )
