"""Dropping a request's work when its client leaves before the answer.

Starlette does not cancel a non-streaming handler when its client disconnects, and uvicorn
only tells the app through `receive()`. Every inference route wraps its model call (after the
body is read: the watcher consumes `receive`) in `cancel_on_disconnect`, so abandoned work is
cancelled, which takes it out of the encoder batcher's queue (hf_runtime.runtime.batcher) or
aborts its sequences. gRPC needs no such help: grpc.aio cancels the handler itself.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")

# nginx's code for "client closed request": never seen by the client, visible in logs/metrics.
CLIENT_CLOSED = 499


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T | Response:
    """Await `work`, but cancel it if the client disconnects first (answering 499, unseen).

    Starlette does not cancel a non-streaming handler when its client leaves; without this, a
    long generation would run to the end for nobody. `work` runs in the request's own task,
    under a cancel scope that a watcher task (the one extra task per request) cancels when
    `receive()` says the client left; a cancellation from outside (the drain's cut-off, the
    server) ends it the same way.

    The watcher looks once before `work` starts: a request whose client left while it waited
    (for its body, for a worker thread to decode it, for the loop) is never admitted. Admitted
    and cancelled a moment later, it would hold a place in the model's queue meanwhile, and a
    burst of abandoned requests could fill the queue against the next live one (a 429).
    """
    started = False
    with anyio.CancelScope() as gone:
        watcher = asyncio.create_task(_cancel_on_disconnect(request.receive, gone))
        try:
            await asyncio.sleep(0)  # the watcher's first look
            started = True
            return await work
        finally:
            watcher.cancel()
            if not started and inspect.iscoroutine(work):
                work.close()  # never started: closed, so Python does not warn it was not awaited
    return Response(status_code=CLIENT_CLOSED)  # only reached when `gone` ended the work


async def _cancel_on_disconnect(
    receive: Callable[[], Awaitable[dict]], scope: anyio.CancelScope
) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the server's receive() failed otherwise: we cannot watch, so just wait
        return
    scope.cancel()
