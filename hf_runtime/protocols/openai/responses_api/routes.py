"""OpenAI's Responses API over the chat route's generation (`prepare_chat`), tool calls read
by the chat's `ChoiceCalls` readers: POST /responses, POST /responses/input_tokens, and the
stored responses' GET, DELETE, GET .../input_items and POST .../cancel.

An answer's `output` is a `reasoning` item (one `reasoning_text` part; a reasoning model's
thinking, with `generation.reasoning_parser`) when there is thinking, a `message` item (one
`output_text` part) when there is text and one `function_call` item per call; `status` is
"completed", or "incomplete" with `incomplete_details.reason` "max_output_tokens" when the token
limit cut it. A stream sends
response.created, response.in_progress, the items' events (`events.EventWriter`), then
response.completed or response.incomplete; a failure after the 200 is an `error` event.
No response runs in the background here, so none can be cancelled (400, as vLLM answers a
synchronous one) or streamed again from the store (400).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from hf_runtime.errors import InvalidInput, NotFound, NotImplementedFeature, Unsupported, preview
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.chat import PreparedChat, prepare_chat
from hf_runtime.protocols.openai.choice_streams import ChoiceStreams, collect
from hf_runtime.protocols.openai.lookup import Endpoint, mount_prefix
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.responses_api.events import (
    EventWriter,
    function_item,
    message_item,
    reasoning_item,
)
from hf_runtime.protocols.openai.responses_api.items import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    page,
    request_items,
)
from hf_runtime.protocols.openai.responses_api.schemas import (
    InputTokensRequest,
    ResponsesRequest,
    check_include,
)
from hf_runtime.protocols.openai.responses_api.store import ResponseStore, StoredResponse
from hf_runtime.protocols.openai.sse import EventStreamResponse
from hf_runtime.routes import (
    OPENAI_RESPONSE,
    OPENAI_RESPONSE_CANCEL,
    OPENAI_RESPONSE_DELETE,
    OPENAI_RESPONSE_INPUT_ITEMS,
    OPENAI_RESPONSES,
    OPENAI_RESPONSES_COMPACT,
    OPENAI_RESPONSES_INPUT_TOKENS,
)

STORE_OFF = "this server keeps no responses: its response store is off"


class _Turn:
    """One response being built: its envelope fields, output items and the chat messages the
    output adds to the conversation."""

    def __init__(self, body: ResponsesRequest, chat: PreparedChat, stored: bool) -> None:
        self.body = body
        self.chat = chat
        self.stored = stored
        self.id = "resp_" + chat.envelope.id.split("-", 1)[-1]
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []

    def envelope(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        text = {"format": (body.text or {}).get("format") or {"type": "text"}}
        if (body.text or {}).get("verbosity"):
            text["verbosity"] = body.text["verbosity"]  # type: ignore[index]
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": None,
            "model": self.chat.model,
            "output": self.output if status != "in_progress" else [],
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "prompt_cache_key": body.extra("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": body.extra("safety_identifier"),
            "service_tier": "default",
            "store": self.stored,
            "temperature": body.temperature,
            "text": text,
            "tool_choice": body.tool_choice or ("auto" if body.tools else "none"),
            "tools": body.tools or [],
            "top_logprobs": 0,
            "top_p": body.top_p,
            "truncation": "disabled",
            "usage": usage,
            "user": body.user,
            "metadata": body.metadata or {},
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


class ResponsesService:
    """The Responses API of one app: its store and its handlers."""

    def __init__(self, registry: ModelRegistry, store: ResponseStore) -> None:
        self.registry = registry
        self.store = store

    def _previous(self, previous: str | None) -> StoredResponse | None:
        if previous is None:
            return None
        if not self.store.enabled:
            raise Unsupported(
                f"previous_response_id cannot be used: {STORE_OFF}; send the whole "
                "conversation as input",
                param="previous_response_id",
            )
        entry = self.store.get(previous)
        if entry is None:
            raise NotFound(
                f"Previous response with id {preview(previous)!r} not found.",
                param="previous_response_id",
            )
        return entry

    async def _prepare(
        self, body: ResponsesRequest, request: Request
    ) -> tuple[PreparedChat, list[dict[str, Any]], StoredResponse | None]:
        previous = self._previous(body.previous_response_id)
        history = [dict(m) for m in previous.messages] if previous else []
        chat_body, system_count = body.to_chat(history)
        conversation = [m.model_dump(exclude_none=True) for m in chat_body.messages]
        prefix = mount_prefix(request, Endpoint.responses)
        chat = await prepare_chat(self.registry, chat_body, prefix, ("resp", "response"))
        return chat, conversation[system_count:], previous

    async def create(self, body: ResponsesRequest, request: Request) -> Response:
        log_ignored_fields(body, "responses")  # type: ignore[arg-type]  # has ignored_fields
        chat, conversation, previous = await self._prepare(body, request)
        turn = _Turn(body, chat, stored=body.store is not False and self.store.enabled)
        items = [*previous.input_items, *previous.body["output"]] if previous else []
        items += request_items(body.input)
        if body.stream:
            streams = ChoiceStreams(chat.generator, chat.specs)
            await streams.start()
            return EventStreamResponse(self._events(turn, streams, conversation, items))
        (result,) = await collect(chat.generator, chat.specs)
        reader = chat.reader()
        message = reader.message(result.text, result.pieces)
        if message.get("reasoning"):
            turn.output.append(reasoning_item(message["reasoning"]))
        if message.get("content"):
            turn.output.append(message_item(message["content"]))
        turn.output += [function_item(call) for call in message.get("tool_calls") or []]
        status = "incomplete" if result.finish_reason == "length" else "completed"
        prompt_tokens = result.prompt_tokens or chat.prompt_tokens
        usage = _usage(prompt_tokens, result.completion_tokens, reader.reasoning_tokens)
        answer = turn.envelope(status, usage)
        self._keep(turn, answer, conversation, items)
        return JSONResponse(answer)

    async def count_input_tokens(self, body: InputTokensRequest, request: Request) -> Response:
        log_ignored_fields(body, "responses/input_tokens")  # type: ignore[arg-type]
        chat, _, _ = await self._prepare(body, request)
        return JSONResponse({"object": "response.input_tokens", "input_tokens": chat.prompt_tokens})

    def _keep(
        self,
        turn: _Turn,
        answer: dict[str, Any],
        conversation: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> None:
        if turn.stored:
            self.store.put(answer, conversation + turn.output_messages(), items)

    async def _events(
        self,
        turn: _Turn,
        streams: ChoiceStreams,
        conversation: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> AsyncIterator[str]:
        events = EventWriter(turn.output)
        reader = turn.chat.reader()
        try:
            yield events.send("response.created", response=turn.envelope("in_progress"))
            yield events.send("response.in_progress", response=turn.envelope("in_progress"))
            async for delta, fields, output_tokens in turn.chat.one_choice_deltas(streams, reader):
                for chunk in events.fields(fields):
                    yield chunk
                if delta.finish_reason is not None:
                    for chunk in events.close():
                        yield chunk
                    status = "incomplete" if delta.finish_reason == "length" else "completed"
                    prompt = delta.prompt_tokens or turn.chat.prompt_tokens
                    counts = _usage(prompt, output_tokens, reader.reasoning_tokens)
                    answer = turn.envelope(status, counts)
                    self._keep(turn, answer, conversation, items)
                    yield events.send(f"response.{status}", response=answer)
        except Exception as exc:
            yield events.error(exc)
        finally:
            await streams.aclose()

    def stored(self, response_id: str) -> StoredResponse:
        entry = self.store.get(response_id)
        if entry is None:
            off = "" if self.store.enabled else f" ({STORE_OFF})"
            raise NotFound(f"Response with id {preview(response_id)!r} not found{off}.")
        return entry

    def retrieve(self, response_id: str, request: Request) -> Response:
        entry = self.stored(response_id)
        check_include(_query_list(request, "include"))
        if request.query_params.get("stream", "false").lower() not in ("false", "0"):
            raise Unsupported(
                "stream=true on a stored response replays a background response's events; "
                "this server runs no response in the background (its answers were complete "
                "when created), so read it without stream",
                param="stream",
            )
        return JSONResponse(entry.body)

    def delete(self, response_id: str) -> Response:
        if not self.store.delete(response_id):
            self.stored(response_id)  # raises: not found
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    def input_items(
        self, response_id: str, request: Request, after: str | None, limit: int, order: str
    ) -> Response:
        entry = self.stored(response_id)
        check_include(_query_list(request, "include"))
        return JSONResponse(page(entry.input_items, after, limit, order))

    def cancel(self, response_id: str) -> Response:
        self.stored(response_id)
        raise InvalidInput(
            "Cannot cancel a synchronous response: only responses created with "
            "background=true can be cancelled, and this server runs none in the background.",
            param="response_id",
        )


def _query_list(request: Request, name: str) -> list[str]:
    """A query array as the SDK sends it (`include[]=a&include[]=b`) or repeated."""
    return request.query_params.getlist(name) + request.query_params.getlist(name + "[]")


def responses_router(registry: ModelRegistry, store: ResponseStore | None = None) -> APIRouter:
    service = ResponsesService(registry, store if store is not None else ResponseStore())
    router = APIRouter(route_class=JSONBodyRoute)

    @router.post(OPENAI_RESPONSES.path, response_model=None)
    async def create_response(body: ResponsesRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, service.create(body, request))

    @router.post(OPENAI_RESPONSES_INPUT_TOKENS.path, response_model=None)
    async def count_input_tokens(body: InputTokensRequest, request: Request) -> Response:
        return await service.count_input_tokens(body, request)

    @router.post(OPENAI_RESPONSES_COMPACT.path, response_model=None)
    async def compact_response() -> Response:
        raise NotImplementedFeature(
            "POST /responses/compact is not supported by this server (compaction writes "
            "OpenAI's encrypted items); send the conversation as input instead"
        )

    @router.get(OPENAI_RESPONSE.path, response_model=None)
    async def get_response(response_id: str, request: Request) -> Response:
        return service.retrieve(response_id, request)

    @router.delete(OPENAI_RESPONSE_DELETE.path, response_model=None)
    async def delete_response(response_id: str) -> Response:
        return service.delete(response_id)

    @router.get(OPENAI_RESPONSE_INPUT_ITEMS.path, response_model=None)
    async def list_input_items(
        response_id: str,
        request: Request,
        after: str | None = Query(None, description="An item id: list the items after it."),
        limit: int = Query(DEFAULT_LIMIT, description=f"Items per page, 1..{MAX_LIMIT}."),
        order: Literal["asc", "desc"] = Query("desc", description="desc: newest first."),
    ) -> Response:
        return service.input_items(response_id, request, after, limit, order)

    @router.post(OPENAI_RESPONSE_CANCEL.path, response_model=None)
    async def cancel_response(response_id: str) -> Response:
        return service.cancel(response_id)

    return router
