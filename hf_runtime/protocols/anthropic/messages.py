"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's shapes over the chat route's
generation (`prepare_chat`), tool calls read by the same `ChoiceCalls` readers.

A reasoning model's thinking (`generation.reasoning_parser`) comes first, as a `thinking` block
(with a random `signature`, as vLLM gives: nothing here checks it); streamed as thinking_delta
events and a signature_delta before its content_block_stop.

stop_reason: "max_tokens" when the token limit cut the reply, "tool_use" when it holds tool
calls, "stop_sequence" (with `stop_sequence`) when one of the request's stop sequences ended
it, else "end_turn". A stream is Anthropic's event sequence: message_start, per content block
content_block_start / _delta (text_delta, input_json_delta) / _stop, message_delta (stop_reason,
usage), message_stop; an error after the 200 is an `error` event in Anthropic's shape.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hf_runtime.errors import ErrorKind, HFRuntimeError
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.anthropic.schemas import (
    ConversationFields,
    CountTokensRequest,
    MessagesRequest,
)
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.errors import anthropic_body
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.chat import PreparedChat, prepare_chat
from hf_runtime.protocols.openai.choice_streams import ChoiceStreams, collect
from hf_runtime.protocols.openai.sse import EventStreamResponse, dumps
from hf_runtime.routes import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, MOUNTS, Surface

logger = logging.getLogger("hf_runtime.anthropic")
(PREFIX,) = MOUNTS[Surface.ANTHROPIC]  # for messages that name routes


def sse(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {dumps({'type': kind, **payload})}\n\n"


def stop_reason(
    finish: str | None, engine_reason: str | int | None, called: bool, stops: list[str]
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for an engine finish."""
    if finish == "length":
        return "max_tokens", None
    if called:
        return "tool_use", None
    if isinstance(engine_reason, str) and engine_reason in stops:
        return "stop_sequence", engine_reason
    return "end_turn", None


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _signature() -> str:
    return uuid.uuid4().hex


def _content(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.get("reasoning"):
        blocks.append(
            {"type": "thinking", "thinking": message["reasoning"], "signature": _signature()}
        )
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": _arguments(function["arguments"]),
            }
        )
    return blocks


def _message(chat: PreparedChat, content: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": chat.envelope.id,
        "type": "message",
        "role": "assistant",
        "model": chat.model,
        "content": content,
        **fields,
    }


async def _whole(chat: PreparedChat, stops: list[str]) -> dict[str, Any]:
    (result,) = await collect(chat.generator, chat.specs)
    content = _content(chat.reader().message(result.text, result.pieces))
    called = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(result.finish_reason, result.stop_reason, called, stops)
    usage = {
        "input_tokens": result.prompt_tokens or chat.prompt_tokens,
        "output_tokens": result.completion_tokens,
    }
    return _message(chat, content, stop_reason=reason, stop_sequence=sequence, usage=usage)


class _Blocks:
    """Turns chat `delta` fields into content block events (one open block at a time)."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None  # "thinking", "text" or "tool_use"
        self.tool_slot: int | None = None  # the OpenAI tool-call index of the open block
        self.called = False

    def events(self, fields: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if fields.get("reasoning"):
            if self.open != "thinking":
                out += self.close()
                block = {"type": "thinking", "thinking": "", "signature": ""}
                out += self._start(block, "thinking")
            delta = {"type": "thinking_delta", "thinking": fields["reasoning"]}
            out.append(sse("content_block_delta", {"index": self.index, "delta": delta}))
        if fields.get("content"):
            if self.open != "text":
                out += self.close()
                out += self._start({"type": "text", "text": ""}, "text")
            delta = {"type": "text_delta", "text": fields["content"]}
            out.append(sse("content_block_delta", {"index": self.index, "delta": delta}))
        for part in fields.get("tool_calls") or []:
            function = part.get("function", {})
            if part.get("id") is not None or self.tool_slot != part["index"]:
                out += self.close()
                block = {"type": "tool_use", "id": part.get("id"), "name": function.get("name"),
                         "input": {}}  # fmt: skip
                out += self._start(block, "tool_use")
                self.tool_slot = part["index"]
                self.called = True
            if function.get("arguments"):
                delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
                out.append(sse("content_block_delta", {"index": self.index, "delta": delta}))
        return out

    def _start(self, block: dict[str, Any], kind: str) -> list[str]:
        self.index += 1
        self.open = kind
        return [sse("content_block_start", {"index": self.index, "content_block": block})]

    def close(self) -> list[str]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            delta = {"type": "signature_delta", "signature": _signature()}
            out.append(sse("content_block_delta", {"index": self.index, "delta": delta}))
        self.open, self.tool_slot = None, None
        return [*out, sse("content_block_stop", {"index": self.index})]


def error_event(exc: Exception) -> str:
    if isinstance(exc, HFRuntimeError):
        body = anthropic_body(exc.kind, exc.message)
    else:
        logger.exception("generation failed mid-stream", exc_info=exc)
        body = anthropic_body(ErrorKind.INTERNAL, f"Internal server error: {type(exc).__name__}")
    return f"event: error\ndata: {dumps(body)}\n\n"


async def _events(
    chat: PreparedChat, streams: ChoiceStreams, stops: list[str]
) -> AsyncIterator[str]:
    reader = chat.reader()
    blocks = _Blocks()
    usage = {"input_tokens": chat.prompt_tokens, "output_tokens": 0}
    try:
        start = _message(chat, [], stop_reason=None, stop_sequence=None, usage=usage)
        yield sse("message_start", {"message": start})
        async for delta, fields, output_tokens in chat.one_choice_deltas(streams, reader):
            for chunk in blocks.events(fields):
                yield chunk
            if delta.finish_reason is not None:
                for chunk in blocks.close():
                    yield chunk
                reason, sequence = stop_reason(
                    delta.finish_reason, delta.stop_reason, blocks.called, stops
                )
                yield sse(
                    "message_delta",
                    {
                        "delta": {"stop_reason": reason, "stop_sequence": sequence},
                        "usage": {"output_tokens": output_tokens},
                    },
                )
        yield sse("message_stop", {})
    except Exception as exc:
        yield error_event(exc)
    finally:
        await streams.aclose()


def _log_ignored(body: ConversationFields, route: str) -> None:
    ignored = body.ignored_fields()
    if ignored:
        shown = ", ".join(repr(name[:64]) for name in ignored[:16])
        logger.warning("%s: ignoring %d request field(s): %s", route, len(ignored), shown)


async def create_message(registry: ModelRegistry, body: MessagesRequest) -> Response:
    _log_ignored(body, "messages")
    chat_body = body.to_chat()
    chat = await prepare_chat(registry, chat_body, PREFIX, ("msg", "message"))
    body.check_thinking(chat.reasoning_parser, chat.model)
    stops = body.stop_sequences or []
    if body.stream:
        streams = ChoiceStreams(chat.generator, chat.specs)
        await streams.start()
        return EventStreamResponse(_events(chat, streams, stops))
    return JSONResponse(await _whole(chat, stops))


async def count_tokens(registry: ModelRegistry, body: CountTokensRequest) -> Response:
    _log_ignored(body, "messages/count_tokens")
    chat = await prepare_chat(registry, body.to_chat(), PREFIX, ("msg", "message"))
    body.check_thinking(chat.reasoning_parser, chat.model)
    return JSONResponse({"input_tokens": chat.prompt_tokens})


def messages_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    @router.post(ANTHROPIC_MESSAGES.path, response_model=None)
    async def messages(body: MessagesRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, create_message(registry, body))

    @router.post(ANTHROPIC_COUNT_TOKENS.path, response_model=None)
    async def messages_count_tokens(body: CountTokensRequest) -> Response:
        return await count_tokens(registry, body)

    return router
