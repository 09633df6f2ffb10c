"""POST /tokenize and POST /detokenize: a model's own tokenizer, in vLLM's shapes.

Served by the OpenAI app (at /v1/... and /openai/v1/...) and at the root, where vLLM serves
them (their root aliases in hf_runtime.routes, served by the root app); errors have OpenAI's
shape on every path. Every model with the TextTokenizer capability answers:
generative models and encoder models alike (vLLM and TEI tokenize for embedding models too).
Chat `messages` are rendered by the model's chat template exactly as /chat/completions renders
them, so the ids are the prompt that route would generate from.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from hf_runtime.errors import InvalidInput
from hf_runtime.model import (
    ModelRegistry,
    ServedModel,
    TextGenerator,
    TextTokenizer,
    require_capability,
)
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.lookup import resolve_model
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.sse import dumps
from hf_runtime.protocols.openai.tokenize_schemas import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from hf_runtime.routes import OPENAI_DETOKENIZE, OPENAI_TOKENIZE

# Responses with more ids than this are written in a thread: formatting a megabyte of
# numbers is not event-loop work.
LARGE_RESPONSE_TOKENS = 4096
# A text that tokenizes to at least one id with and without special tokens: where its ids sit
# in the first tells which special tokens the tokenizer puts before and after a text.
_PROBE_TEXT = "a"


def _tokenizer(model: ServedModel) -> TextTokenizer:
    return require_capability(model, TextTokenizer)


async def _special_tokens(tokenizer: TextTokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a text (BOS; CLS ... SEP), found by
    tokenizing a probe with and without them: its own post-processor wraps any text the
    same way, so these wrap a rendered chat exactly as tokenizing its text would."""
    bare = await tokenizer.tokenize(_PROBE_TEXT, add_special_tokens=False)
    full = await tokenizer.tokenize(_PROBE_TEXT, add_special_tokens=True)
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise InvalidInput(
        "this model's tokenizer cannot add special tokens to a chat; leave "
        "add_special_tokens false (the chat template writes them)",
        param="add_special_tokens",
    )


async def _chat_ids(
    model: ServedModel, tokenizer: TextTokenizer, body: TokenizeRequest
) -> list[int]:
    generator = model.capability(TextGenerator)
    if generator is None:
        raise InvalidInput(
            f"Model {model.name} ({model.task}) has no chat template: messages need a "
            "generative model; send the text as prompt instead",
            param="messages",
        )
    ids = await generator.render_chat(
        body.template_messages(),
        chat_template=body.chat_template,
        add_generation_prompt=bool(body.add_generation_prompt),
        continue_final_message=bool(body.continue_final_message),
        tools=body.tools,
        chat_template_kwargs=body.chat_template_kwargs,
    )
    if not body.special_tokens:
        return ids
    before, after = await _special_tokens(tokenizer)
    return [*before, *ids, *after]


async def _json_response(payload: dict[str, Any], size: int) -> Response:
    if size > LARGE_RESPONSE_TOKENS:
        content = await asyncio.to_thread(dumps, payload)
    else:
        content = dumps(payload)
    return Response(content=content.encode("utf-8"), media_type="application/json")


async def tokenize(registry: ModelRegistry, body: TokenizeRequest) -> Response:
    log_ignored_fields(body, "tokenize")
    body.check()
    model = resolve_model(registry, body.model)
    tokenizer = _tokenizer(model)
    if body.messages is not None:
        ids = await _chat_ids(model, tokenizer, body)
    else:
        assert body.prompt is not None  # check() demands one of them
        ids = await tokenizer.tokenize(body.prompt, add_special_tokens=body.special_tokens)
    strings = await tokenizer.token_strings(ids) if body.return_token_strs else None
    payload = {
        "count": len(ids),
        "max_model_len": tokenizer.max_model_len,
        "tokens": ids,
        "token_strs": strings,
    }
    return await _json_response(payload, len(ids))


async def detokenize(registry: ModelRegistry, body: DetokenizeRequest) -> Response:
    log_ignored_fields(body, "detokenize")
    body.check()
    model = resolve_model(registry, body.model)
    tokenizer = _tokenizer(model)
    try:
        text = await tokenizer.detokenize(body.tokens)
    except InvalidInput as exc:  # the ids are the request's only input: name them
        raise InvalidInput(exc.message, param="tokens") from None
    return await _json_response({"prompt": text}, len(body.tokens))


def tokenize_router(
    registry: ModelRegistry, *, root: bool = False, skip: frozenset[str] = frozenset()
) -> APIRouter:
    """The routes under the OpenAI app's mounts, or (`root`) at their root aliases; not at
    the paths in `skip` (served by another router: protocols.tei.shared_paths)."""
    router = APIRouter(route_class=JSONBodyRoute)

    async def tokenize_route(body: TokenizeRequest) -> Response:
        return await tokenize(registry, body)

    async def detokenize_route(body: DetokenizeRequest) -> Response:
        return await detokenize(registry, body)

    for path in OPENAI_TOKENIZE.app_paths(root):
        if path in skip:
            continue
        router.add_api_route(
            path,
            tokenize_route,
            methods=["POST"],
            response_model=TokenizeResponse,
            name="tokenize",
            summary="Tokenize a text (prompt) or a chat (messages) with the model's tokenizer",
        )
    for path in OPENAI_DETOKENIZE.app_paths(root):
        router.add_api_route(
            path,
            detokenize_route,
            methods=["POST"],
            response_model=DetokenizeResponse,
            name="detokenize",
            summary="Turn token ids back into text with the model's tokenizer",
        )
    return router
