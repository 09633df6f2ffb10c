"""POST /completions: OpenAI's (legacy) text completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hf_runtime.errors import InvalidInput
from hf_runtime.model import ModelRegistry, TextGenerator
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai import logprobs as lp
from hf_runtime.protocols.openai.choice_streams import (
    ChoiceResult,
    ChoiceStreams,
    collect,
    prompt_token_total,
)
from hf_runtime.protocols.openai.lookup import (
    Endpoint,
    mount_prefix,
    require_generator,
    resolve_model,
)
from hf_runtime.protocols.openai.request_params import SequenceSpec, fan_out, sampling_params
from hf_runtime.protocols.openai.responses import Envelope, StreamUsage, log_ignored_fields, usage
from hf_runtime.protocols.openai.schemas import CompletionRequest
from hf_runtime.protocols.openai.sse import DONE, EventStreamResponse, error_event, event
from hf_runtime.protocols.openai.structured import response_format_constraint
from hf_runtime.protocols.openai.structured_outputs import (
    format_constraint,
    structured_outputs_constraint,
)
from hf_runtime.routes import OPENAI_COMPLETIONS


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    echo_text: str = ""  # the prompt's text, when echo was asked
    echo_pieces: tuple[str, ...] = ()  # its tokens' texts, when echo and logprobs were asked


async def _prepare_prompt(
    generator: TextGenerator, item: str | list[int], echo: bool, echo_logprobs: bool
) -> Prompt:
    ids = await generator.tokenize(item) if isinstance(item, str) else item
    if not ids:
        raise InvalidInput("prompt must not be empty", param="prompt")
    if not echo:
        return Prompt(ids)
    text = item if isinstance(item, str) else await generator.detokenize(ids)
    pieces: tuple[str, ...] = ()
    if echo_logprobs:
        pieces = tuple(await asyncio.gather(*(generator.detokenize([t]) for t in ids)))
    return Prompt(ids, text, pieces)


def _choice_logprobs(prompt: Prompt, entries: list[Any], echo: bool) -> dict[str, list[Any]]:
    out = lp.empty_completion_logprobs()
    offset = 0
    if echo:
        lp.add_prompt_tokens(out, list(prompt.echo_pieces), 0)
        offset = len(prompt.echo_text)
    lp.add_completion_tokens(out, entries, offset)
    return out


def _completion_body(
    envelope: Envelope,
    body: CompletionRequest,
    prompts: list[Prompt],
    specs: list[SequenceSpec],
    results: list[ChoiceResult],
) -> dict[str, Any]:
    choices = []
    for spec, result in zip(specs, results, strict=True):
        prompt = prompts[spec.prompt_index]
        text = prompt.echo_text + result.text if body.echo else result.text
        logprobs = None
        if body.logprobs is not None:
            logprobs = _choice_logprobs(prompt, result.logprobs, bool(body.echo))
        choices.append(
            {
                "index": spec.index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": result.finish_reason,
                "stop_reason": result.stop_reason,
            }
        )
    reported = {spec.index: r.prompt_tokens for spec, r in zip(specs, results, strict=True)}
    completion_tokens = sum(r.completion_tokens for r in results)
    return envelope.body(
        choices=choices, usage=usage(prompt_token_total(specs, reported), completion_tokens)
    )


async def _completion_events(
    envelope: Envelope,
    body: CompletionRequest,
    prompts: list[Prompt],
    specs: list[SequenceSpec],
    streams: ChoiceStreams,
) -> AsyncIterator[str]:
    include_usage = body.include_usage_in_stream
    extra = {"usage": None} if include_usage else {}
    counter = StreamUsage(specs)
    offsets = {spec.index: 0 for spec in specs}
    echo_pending = {spec.index for spec in specs} if body.echo else set()
    pending_logprobs: dict[int, list[Any]] = {spec.index: [] for spec in specs}
    try:
        async for index, delta in streams.events():
            counter.add(index, delta)
            pending_logprobs[index].extend(delta.logprobs or [])
            echo_now = index in echo_pending
            if not delta.text and delta.finish_reason is None and not echo_now:
                continue  # e.g. bytes of a character still pending: nothing to show yet
            text, logprobs = delta.text, None
            prompt = prompts[specs[index].prompt_index]
            if body.logprobs is not None:
                logprobs = lp.empty_completion_logprobs()
                if echo_now:
                    lp.add_prompt_tokens(logprobs, list(prompt.echo_pieces), 0)
                    offsets[index] = len(prompt.echo_text)
                offsets[index] = lp.add_completion_tokens(
                    logprobs, pending_logprobs[index], offsets[index]
                )
                pending_logprobs[index] = []
            if echo_now:
                text = prompt.echo_text + text
                echo_pending.discard(index)
            choice = {
                "index": index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": delta.finish_reason,
                "stop_reason": delta.stop_reason,
            }
            yield event(envelope.body(choices=[choice], **extra))
        if include_usage:
            yield event(envelope.body(choices=[], usage=counter.as_dict()))
    except Exception as exc:
        yield error_event(exc)
    finally:
        await streams.aclose()
    yield DONE


async def create_completion(
    registry: ModelRegistry, body: CompletionRequest, request: Request
) -> Response:
    log_ignored_fields(body, "completions")
    body.check()
    constraint = format_constraint(
        response_format_constraint(body.response_format),
        structured_outputs_constraint(body.structured_outputs),
    )
    model = resolve_model(registry, body.model)
    generator = require_generator(
        model, Endpoint.completions, mount_prefix(request, Endpoint.completions)
    )
    echo = bool(body.echo)
    prompts = list(
        await asyncio.gather(
            *(
                _prepare_prompt(generator, item, echo, echo and body.logprobs is not None)
                for item in body.prompt_batch()
            )
        )
    )
    envelope = Envelope.new("cmpl", "text_completion", model.name)
    params = sampling_params(
        body,
        max_tokens=body.max_tokens,
        logprobs=body.logprobs,
        defaults=generator.sampling_defaults,
        structured=constraint,
    )
    specs = fan_out(envelope.id, [p.token_ids for p in prompts], body.choices_per_prompt, params)
    if body.stream:
        streams = ChoiceStreams(generator, specs)
        await streams.start()
        return EventStreamResponse(_completion_events(envelope, body, prompts, specs, streams))
    results = await collect(generator, specs)
    return JSONResponse(_completion_body(envelope, body, prompts, specs, results))


def completions_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    @router.post(OPENAI_COMPLETIONS.path, response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        result = await cancel_on_disconnect(request, create_completion(registry, body, request))
        return result

    return router
