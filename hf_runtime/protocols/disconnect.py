"""Dropping a request's work when its client leaves before the answer.

Starlette does not cancel a non-streaming handler when its client disconnects, and uvicorn
only tells the app through `receive()`. Every inference route wraps its model call (after the
body is read: the watcher consumes `receive`) in `cancel_on_disconnect`, so abandoned work is
cancelled, which takes it out of the encoder batcher's queue (hf_runtime.runtime.batcher) or
aborts its sequences. gRPC needs no such help: grpc.aio cancels the handler itself.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    long generation would run to the end for nobody.
    """
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not work_task.done() and watcher.exception() is not None:
            # The server's receive() failed for another reason: we cannot watch, so just wait.
            return await work_task
        if work_task.done():
            return work_task.result()
        return Response(status_code=CLIENT_CLOSED)
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await work_task


async def _wait_for_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
