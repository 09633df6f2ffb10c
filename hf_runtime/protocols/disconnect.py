"""Dropping a request's work when its client leaves before the answer.

Starlette does not cancel a non-streaming handler when its client disconnects, and uvicorn
only tells the app through `receive()`. Every inference route wraps its model call (after the
body is read: the watcher consumes `receive`) in `cancel_on_disconnect`, so abandoned work is
cancelled, which takes it out of the encoder batcher's queue (hf_runtime.runtime.batcher) or
aborts its sequences. gRPC needs no such help: grpc.aio cancels the handler itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")

# nginx's code for "client closed request": never seen by the client, visible in logs/metrics.
CLIENT_CLOSED = 499


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T | Response:
    """Await `work`, but cancel it if the client disconnects first (answering 499, unseen).

    Starlette does not cancel a non-streaming handler when its client leaves; without this, a
    long generation would run to the end for nobody. `work` runs in the handler's own task
    (no task of its own, no asyncio.wait: this is on every encoder request's hot path); one
    watcher task cancels that task when the client leaves, and only a cancellation the watcher
    made becomes the 499: any other (a drain's cut-off) goes on up as before.
    """
    handler = asyncio.current_task()
    if handler is None:  # not in a task: nothing could cancel it
        return await work
    left = False

    async def watch() -> None:
        nonlocal left
        try:
            await _wait_for_disconnect(request.receive)
        except Exception:  # the server's receive() failed for another reason: just wait
            return
        left = True
        handler.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise
        handler.uncancel()  # the watcher's cancellation ends here, as a response
        return Response(status_code=CLIENT_CLOSED)
    finally:
        watcher.cancel()


async def _wait_for_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
