"""POST /responses, GET and DELETE /responses/{id}: OpenAI's Responses API over the chat
route's generation (`prepare_chat`), tool calls read by the chat's `ChoiceCalls` readers.

An answer's `output` is a `reasoning` item (one `reasoning_text` part; a reasoning model's
thinking, with `generation.reasoning_parser`) when there is thinking, a `message` item (one
`output_text` part) when there is text and one `function_call` item per call; `status` is
"completed", or "incomplete" with `incomplete_details.reason` "max_output_tokens" when the token
limit cut it. A stream sends
OpenAI's events, each with its `sequence_number`: response.created, response.in_progress, per
item output_item.added, (content_part.added, reasoning_text.delta..., reasoning_text.done,
content_part.done | content_part.added, output_text.delta..., output_text.done,
content_part.done | function_call_arguments.delta..., .done), output_item.done, then
response.completed or response.incomplete; a failure after the 200 is an `error` event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hf_runtime.errors import ErrorKind, HFRuntimeError, NotFound, preview
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.errors import openai_body
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.chat import PreparedChat, prepare_chat
from hf_runtime.protocols.openai.choice_streams import ChoiceStreams, collect
from hf_runtime.protocols.openai.lookup import Endpoint, mount_prefix
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.responses_api.schemas import ResponsesRequest
from hf_runtime.protocols.openai.responses_api.store import ResponseStore
from hf_runtime.protocols.openai.sse import EventStreamResponse, dumps
from hf_runtime.routes import OPENAI_RESPONSE, OPENAI_RESPONSE_DELETE, OPENAI_RESPONSES


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Turn:
    """One response being built: its envelope fields, output items and the chat messages the
    output adds to the conversation."""

    def __init__(self, body: ResponsesRequest, chat: PreparedChat) -> None:
        self.body = body
        self.chat = chat
        self.id = "resp_" + chat.envelope.id.split("-", 1)[-1]
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []

    def envelope(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        text_format = (body.text or {}).get("format") or {"type": "text"}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": self.chat.model,
            "output": self.output if status != "in_progress" else [],
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "store": body.store is not False,
            "temperature": body.temperature,
            "text": {"format": text_format},
            "tool_choice": body.tool_choice or ("auto" if body.tools else "none"),
            "tools": body.tools or [],
            "top_p": body.top_p,
            "truncation": "disabled",
            "usage": usage,
            "user": body.user,
            "metadata": body.metadata or {},
        }

    def message_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {
            "type": "message",
            "id": _item_id("msg"),
            "status": status,
            "role": "assistant",
            "content": [part] if status == "completed" else [],
        }

    def reasoning_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        part = {"type": "reasoning_text", "text": text}
        return {
            "type": "reasoning",
            "id": _item_id("rs"),
            "summary": [],
            "content": [part] if status == "completed" else [],
            "encrypted_content": None,
            "status": status,
        }

    def output_messages(self) -> list[dict[str, Any]]:
        """The output as chat messages (what a later turn's history holds)."""
        texts = [p["text"] for i in self.output if i["type"] == "message" for p in i["content"]]
        calls = [
            {
                "id": i["call_id"],
                "type": "function",
                "function": {"name": i["name"], "arguments": i["arguments"]},
            }
            for i in self.output
            if i["type"] == "function_call"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        return [message]


def _usage(input_tokens: int, output_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def _function_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": _item_id("fc"),
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"],
        "status": status,
    }


class ResponsesService:
    """The Responses API of one app: its store and its handlers."""

    def __init__(self, registry: ModelRegistry, store: ResponseStore) -> None:
        self.registry = registry
        self.store = store

    def _history(self, previous: str | None) -> list[dict[str, Any]]:
        if previous is None:
            return []
        entry = self.store.get(previous)
        if entry is None:
            raise NotFound(
                f"Previous response with id {preview(previous)!r} not found.",
                param="previous_response_id",
            )
        return [dict(m) for m in entry.messages]

    async def create(self, body: ResponsesRequest, request: Request) -> Response:
        log_ignored_fields(body, "responses")  # type: ignore[arg-type]  # has ignored_fields
        history = self._history(body.previous_response_id)
        chat_body, system_count = body.to_chat(history)
        conversation = [m.model_dump(exclude_none=True) for m in chat_body.messages]
        conversation = conversation[system_count:]
        prefix = mount_prefix(request, Endpoint.responses)
        chat = await prepare_chat(self.registry, chat_body, prefix, ("resp", "response"))
        turn = _Turn(body, chat)
        if body.stream:
            streams = ChoiceStreams(chat.generator, chat.specs)
            await streams.start()
            return EventStreamResponse(self._events(turn, streams, conversation))
        (result,) = await collect(chat.generator, chat.specs)
        reader = chat.reader()
        message = reader.message(result.text, result.pieces)
        if message.get("reasoning"):
            turn.output.append(turn.reasoning_item(message["reasoning"]))
        if message.get("content"):
            turn.output.append(turn.message_item(message["content"]))
        turn.output += [_function_item(call) for call in message.get("tool_calls") or []]
        status = "incomplete" if result.finish_reason == "length" else "completed"
        prompt_tokens = result.prompt_tokens or chat.prompt_tokens
        usage = _usage(prompt_tokens, result.completion_tokens, reader.reasoning_tokens)
        answer = turn.envelope(status, usage)
        self._keep(turn, answer, conversation)
        return JSONResponse(answer)

    def _keep(
        self, turn: _Turn, answer: dict[str, Any], conversation: list[dict[str, Any]]
    ) -> None:
        if turn.body.store is not False:
            self.store.put(answer, conversation + turn.output_messages())

    async def _events(
        self, turn: _Turn, streams: ChoiceStreams, conversation: list[dict[str, Any]]
    ) -> AsyncIterator[str]:
        events = _EventWriter(turn)
        reader = turn.chat.reader()
        output_tokens = 0
        try:
            yield events.send("response.created", response=turn.envelope("in_progress"))
            yield events.send("response.in_progress", response=turn.envelope("in_progress"))
            async for _, delta in streams.events():
                output_tokens += len(delta.token_ids)
                finished = delta.finish_reason is not None
                fields = reader.delta(delta.text, finished, len(delta.token_ids))
                for chunk in events.fields(fields):
                    yield chunk
                if finished:
                    for chunk in events.close():
                        yield chunk
                    status = "incomplete" if delta.finish_reason == "length" else "completed"
                    prompt = delta.prompt_tokens or turn.chat.prompt_tokens
                    counts = _usage(prompt, output_tokens, reader.reasoning_tokens)
                    answer = turn.envelope(status, counts)
                    self._keep(turn, answer, conversation)
                    yield events.send(f"response.{status}", response=answer)
        except Exception as exc:
            yield events.error(exc)
        finally:
            await streams.aclose()

    def retrieve(self, response_id: str) -> Response:
        entry = self.store.get(response_id)
        if entry is None:
            raise NotFound(f"Response with id {preview(response_id)!r} not found.")
        return JSONResponse(entry.body)

    def delete(self, response_id: str) -> Response:
        if not self.store.delete(response_id):
            raise NotFound(f"Response with id {preview(response_id)!r} not found.")
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


class _EventWriter:
    """Numbered events, and the open output item (a message or a function call)."""

    def __init__(self, turn: _Turn) -> None:
        self.turn = turn
        self.sequence = 0
        self.item: dict[str, Any] | None = None
        self.slot: int | None = None  # the open function call's tool-call index
        self.text = ""

    def send(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {dumps(payload)}\n\n"

    def fields(self, fields: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if fields.get("reasoning"):
            if self.item is None or self.item["type"] != "reasoning":
                out += self.close()
                out += self._open(self.turn.reasoning_item("", "in_progress"))
                part = {"type": "reasoning_text", "text": ""}
                out.append(self.send("response.content_part.added", **self._at(), part=part))
            self.text += fields["reasoning"]
            out.append(
                self.send("response.reasoning_text.delta", **self._at(), delta=fields["reasoning"])
            )
        if fields.get("content"):
            if self.item is None or self.item["type"] != "message":
                out += self.close()
                out += self._open(self.turn.message_item("", "in_progress"))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(self.send("response.content_part.added", **self._at(), part=part))
            self.text += fields["content"]
            out.append(
                self.send(
                    "response.output_text.delta", **self._at(), delta=fields["content"],
                    logprobs=[],
                )
            )  # fmt: skip
        for part in fields.get("tool_calls") or []:
            function = part.get("function", {})
            if part.get("id") is not None or self.slot != part["index"]:
                out += self.close()
                call = {"id": part.get("id"), "function": {"name": function.get("name"),
                                                           "arguments": ""}}  # fmt: skip
                out += self._open(_function_item(call, "in_progress"))
                self.slot = part["index"]
            if function.get("arguments") and self.item is not None:
                self.item["arguments"] += function["arguments"]
                out.append(
                    self.send(
                        "response.function_call_arguments.delta",
                        item_id=self.item["id"],
                        output_index=len(self.turn.output),
                        delta=function["arguments"],
                    )
                )
        return out

    def _at(self) -> dict[str, Any]:
        assert self.item is not None
        return {"item_id": self.item["id"], "output_index": len(self.turn.output),
                "content_index": 0}  # fmt: skip

    def _open(self, item: dict[str, Any]) -> list[str]:
        self.item = item
        return [self.send("response.output_item.added", output_index=len(self.turn.output),
                          item=item)]  # fmt: skip

    def close(self) -> list[str]:
        item, self.item, self.slot = self.item, None, None
        if item is None:
            return []
        out = []
        index = len(self.turn.output)
        if item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": self.text}
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self.send("response.reasoning_text.done", **at, text=self.text))
            out.append(self.send("response.content_part.done", **at, part=part))
            item = {**item, "status": "completed", "content": [part]}
            self.text = ""
        elif item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self.send("response.output_text.done", **at, text=self.text, logprobs=[]))
            out.append(self.send("response.content_part.done", **at, part=part))
            item = {**item, "status": "completed", "content": [part]}
            self.text = ""
        else:
            out.append(
                self.send(
                    "response.function_call_arguments.done", item_id=item["id"],
                    output_index=index, name=item["name"], arguments=item["arguments"],
                )
            )  # fmt: skip
            item = {**item, "status": "completed"}
        self.turn.output.append(item)
        out.append(self.send("response.output_item.done", output_index=index, item=item))
        return out

    def error(self, exc: Exception) -> str:
        if isinstance(exc, HFRuntimeError):
            error = openai_body(exc.kind, exc.message, exc.param)["error"]
        else:
            error = openai_body(ErrorKind.INTERNAL, f"Internal server error: {type(exc).__name__}")[
                "error"
            ]
        return self.send("error", code=str(error["code"]), message=error["message"],
                         param=error["param"])  # fmt: skip


def responses_router(registry: ModelRegistry, store: ResponseStore | None = None) -> APIRouter:
    service = ResponsesService(registry, store or ResponseStore())
    router = APIRouter(route_class=JSONBodyRoute)

    @router.post(OPENAI_RESPONSES.path, response_model=None)
    async def create_response(body: ResponsesRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, service.create(body, request))

    @router.get(OPENAI_RESPONSE.path, response_model=None)
    async def get_response(response_id: str) -> Response:
        return service.retrieve(response_id)

    @router.delete(OPENAI_RESPONSE_DELETE.path, response_model=None)
    async def delete_response(response_id: str) -> Response:
        return service.delete(response_id)

    return router
