"""POST /chat/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hf_runtime.model import ModelRegistry, TextGenerator
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.chat_schemas import ChatCompletionRequest
from hf_runtime.protocols.openai.choice_streams import (
    ChoiceResult,
    ChoiceStreams,
    collect,
    prompt_token_total,
)
from hf_runtime.protocols.openai.logprobs import chat_logprobs
from hf_runtime.protocols.openai.lookup import (
    Endpoint,
    mount_prefix,
    require_generator,
    resolve_model,
)
from hf_runtime.protocols.openai.request_params import SequenceSpec, fan_out, sampling_params
from hf_runtime.protocols.openai.responses import Envelope, StreamUsage, log_ignored_fields, usage
from hf_runtime.protocols.openai.sse import DONE, EventStreamResponse, error_event, event
from hf_runtime.protocols.openai.structured import (
    ToolPlan,
    one_constraint,
    plan_tools,
    response_format_constraint,
)
from hf_runtime.protocols.openai.structured_outputs import (
    format_constraint,
    structured_outputs_constraint,
)
from hf_runtime.protocols.openai.tool_calls import REASONING_FIELDS, ChoiceCalls, check_parser
from hf_runtime.reasoning import reasoning_splitter
from hf_runtime.routes import OPENAI_CHAT
from hf_runtime.types import GenerationDelta


def _chat_body(
    envelope: Envelope,
    body: ChatCompletionRequest,
    specs: list[SequenceSpec],
    results: list[ChoiceResult],
    readers: dict[int, ChoiceCalls],
    reasoning: bool = False,
) -> dict[str, Any]:
    top_n = body.top_logprobs or 0
    choices = []
    for spec, result in zip(specs, results, strict=True):
        reader = readers[spec.index]
        choices.append(
            {
                "index": spec.index,
                "message": reader.message(result.text, result.pieces),
                "logprobs": chat_logprobs(result.logprobs, top_n) if body.logprobs else None,
                "finish_reason": reader.finish_reason(result.finish_reason),
                "stop_reason": result.stop_reason,
            }
        )
    reported = {spec.index: r.prompt_tokens for spec, r in zip(specs, results, strict=True)}
    completion_tokens = sum(r.completion_tokens for r in results)
    counts: dict[str, Any] = usage(prompt_token_total(specs, reported), completion_tokens)
    return envelope.body(choices=choices, usage=_with_reasoning(counts, readers, reasoning))


def _with_reasoning(
    counts: dict[str, Any], readers: dict[int, ChoiceCalls], reasoning: bool
) -> dict[str, Any]:
    """Usage with vLLM's completion_tokens_details.reasoning_tokens when the model's thinking
    is split out (only then: the usage of other models keeps its shape)."""
    if not reasoning:
        return counts
    thought = sum(reader.reasoning_tokens for reader in readers.values())
    return {**counts, "completion_tokens_details": {"reasoning_tokens": thought}}


async def _chat_events(
    envelope: Envelope,
    body: ChatCompletionRequest,
    specs: list[SequenceSpec],
    streams: ChoiceStreams,
    readers: dict[int, ChoiceCalls],
    reasoning: bool = False,
) -> AsyncIterator[str]:
    include_usage = body.include_usage_in_stream
    extra = {"usage": None} if include_usage else {}
    top_n = body.top_logprobs or 0
    counter = StreamUsage(specs)
    pending_logprobs: dict[int, list[Any]] = {spec.index: [] for spec in specs}

    def chunk(index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return event(envelope.body(choices=[choice], **extra))

    try:
        # Like OpenAI: each choice opens with a role-only chunk, then content chunks follow.
        for spec in specs:
            yield chunk(spec.index, {"role": "assistant", "content": ""}, None, None)
        async for index, delta in streams.events():
            counter.add(index, delta)
            pending_logprobs[index].extend(delta.logprobs or [])
            finished = delta.finish_reason is not None
            # Reasoning, content and tool calls; {} while text is held back (a partial marker,
            # pending bytes of a character): nothing to show yet.
            fields = readers[index].delta(delta.text, finished, len(delta.token_ids))
            if not fields and not finished:
                continue
            thought = {k: fields.pop(k) for k in REASONING_FIELDS if k in fields}
            if thought and (fields or finished):  # reasoning in a chunk of its own, first
                yield chunk(index, thought, None, None)
            elif thought:
                fields = thought
            logprobs = None
            if body.logprobs:
                logprobs = chat_logprobs(pending_logprobs[index], top_n)
                pending_logprobs[index] = []
            finish = readers[index].finish_reason(delta.finish_reason)
            yield chunk(index, fields, logprobs, finish)
        if include_usage:
            counts = _with_reasoning(counter.as_dict(), readers, reasoning)
            yield event(envelope.body(choices=[], usage=counts))
    except Exception as exc:
        yield error_event(exc)
    finally:
        await streams.aclose()
    yield DONE


@dataclass
class PreparedChat:
    """A validated chat request turned into engine sequences, ready to run: what the chat
    route and the other protocols built on it (Anthropic Messages, OpenAI Responses) share."""

    model: str
    generator: TextGenerator
    envelope: Envelope
    specs: list[SequenceSpec]
    plan: ToolPlan
    parser: str | None
    # The model's reasoning parser when this request's thinking is split out: not under a
    # grammar (structured outputs, forced tool calls), which holds from the first token on,
    # so the model cannot think there; not for qwen3 with enable_thinking false.
    reasoning_parser: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @property
    def splits_reasoning(self) -> bool:
        return reasoning_splitter(self.reasoning_parser, self.chat_template_kwargs) is not None

    def reader(self) -> ChoiceCalls:
        """A reader for one choice: reasoning split off, tool calls read (it keeps state)."""
        splitter = reasoning_splitter(self.reasoning_parser, self.chat_template_kwargs)
        return ChoiceCalls(self.plan, self.parser, splitter)

    def readers(self) -> dict[int, ChoiceCalls]:
        """One reader per choice (readers keep state)."""
        return {spec.index: self.reader() for spec in self.specs}

    @property
    def prompt_tokens(self) -> int:
        return len(self.specs[0].request.prompt_token_ids)

    async def one_choice_deltas(
        self, streams: ChoiceStreams, reader: ChoiceCalls
    ) -> AsyncIterator[tuple[GenerationDelta, dict[str, Any], int]]:
        """A one-choice stream read by `reader` (Messages, Responses): each engine delta, its
        `delta` fields and the output tokens so far."""
        output_tokens = 0
        async for _, delta in streams.events():
            output_tokens += len(delta.token_ids)
            finished = delta.finish_reason is not None
            yield delta, reader.delta(delta.text, finished, len(delta.token_ids)), output_tokens


async def prepare_chat(
    registry: ModelRegistry,
    body: ChatCompletionRequest,
    prefix: str,
    envelope_kind: tuple[str, str] = ("chatcmpl", "chat.completion"),
) -> PreparedChat:
    """Validate `body`, render its conversation and plan its sequences (nothing runs yet).
    `prefix`: the mount, for messages that name routes; `envelope_kind`: (id prefix, object)."""
    body.check()
    messages = body.template_messages()
    plan = plan_tools(body.tools, body.tool_choice, body.parallel_tool_calls)
    output_format = format_constraint(
        response_format_constraint(body.response_format),
        structured_outputs_constraint(body.structured_outputs),
    )
    constraint = one_constraint(output_format, plan)
    model = resolve_model(registry, body.model)
    generator = require_generator(model, Endpoint.chat, prefix)
    parser = generator.tool_call_parser if plan.mode == "auto" else None
    plan = check_parser(plan, parser, model.name)
    prompt_ids = await generator.render_chat(
        messages,
        chat_template=body.chat_template,
        add_generation_prompt=bool(body.add_generation_prompt),
        continue_final_message=bool(body.continue_final_message),
        tools=body.tools,
        chat_template_kwargs=body.chat_template_kwargs,
    )
    envelope = Envelope.new(*envelope_kind, model.name)
    params = sampling_params(
        body,
        max_tokens=body.max_new_tokens,
        logprobs=body.logprobs_count,
        defaults=generator.sampling_defaults,
        structured=constraint,
    )
    specs = fan_out(envelope.id, [prompt_ids], body.choices_per_prompt, params)
    reasoning = generator.reasoning_parser if constraint is None else None
    return PreparedChat(
        model.name, generator, envelope, specs, plan, parser, reasoning,
        body.chat_template_kwargs,
    )  # fmt: skip


async def create_chat_completion(
    registry: ModelRegistry, body: ChatCompletionRequest, request: Request
) -> Response:
    log_ignored_fields(body, "chat/completions")
    chat = await prepare_chat(registry, body, mount_prefix(request, Endpoint.chat))
    envelope, specs, readers = chat.envelope, chat.specs, chat.readers()
    if body.stream:
        streams = ChoiceStreams(chat.generator, specs)
        await streams.start()
        chunk_envelope = Envelope(
            envelope.id, "chat.completion.chunk", envelope.created, chat.model
        )
        events = _chat_events(chunk_envelope, body, specs, streams, readers, chat.splits_reasoning)
        return EventStreamResponse(events)
    results = await collect(chat.generator, specs)
    return JSONResponse(_chat_body(envelope, body, specs, results, readers, chat.splits_reasoning))


def chat_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    @router.post(OPENAI_CHAT.path, response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, create_chat_completion(registry, body, request))

    return router
