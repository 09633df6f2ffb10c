"""Server-sent events as OpenAI sends them: `data: {json}\\n\\n` ... `data: [DONE]\\n\\n`."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hf_runtime.errors import ErrorKind, HFRuntimeError
from hf_runtime.protocols.errors import openai_body

logger = logging.getLogger("hf_runtime.openai")

DONE = "data: [DONE]\n\n"


def dumps(payload: Any) -> str:
    """Compact JSON, as JSONResponse writes it (allow_nan=False: NaN is not JSON)."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def event(payload: dict[str, Any]) -> str:
    return f"data: {dumps(payload)}\n\n"


def error_event(exc: Exception) -> str:
    """An error after the 200 and the first events went out: OpenAI's error body as an event
    (the SDK raises APIError on it)."""
    if isinstance(exc, HFRuntimeError):
        if exc.kind is ErrorKind.INTERNAL:
            logger.error("generation failed mid-stream: %s", exc.message)
        body = openai_body(exc.kind, exc.message, exc.param)
    else:
        logger.exception("generation failed mid-stream", exc_info=exc)
        body = openai_body(ErrorKind.INTERNAL, f"Internal server error: {type(exc).__name__}")
    return event(body)


class EventStreamResponse(StreamingResponse):
    """A text/event-stream response that always notices a client leaving and always closes
    its body iterator (whose `finally` aborts the engine sequences).

    Starlette's StreamingResponse listens for disconnects only on servers with ASGI spec < 2.4
    and never closes the iterator itself; on a 2.4 server a silent client would keep generation
    running until the next token fails to send.
    """

    media_type = "text/event-stream"

    def __init__(self, content: Any, **kwargs: Any) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, headers=headers, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-send
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
