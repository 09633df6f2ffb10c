"""POST /decode, and TEI's /tokenize body: a model's own tokenizer, TEI's way.

TEI's token: {"id", "text", "special", "start", "stop"}: a special token's text is the
tokenizer's string for it (no span); another's is the slice of the input it covers, `start`
and `stop` its UTF-8 byte offsets (TEI's Rust tokenizer counts bytes)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hf_runtime.errors import InvalidInput
from hf_runtime.model import ModelRegistry, TextTokenizer
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.tei.embed import batch_of, json_response
from hf_runtime.protocols.tei.lookup import resolve
from hf_runtime.protocols.tei.schemas import DecodeRequest, TokenizeRequest
from hf_runtime.routes import TEI_DECODE
from hf_runtime.types import TokenSpan

TOKENIZER = "a model with a tokenizer"


def simple_tokens(text: str, spans: list[TokenSpan], strings: list[str]) -> list[dict[str, Any]]:
    """TEI's tokens of one text. Blocking (a long text's offsets): run it in a thread."""
    encoded = text.encode("utf-8")
    # Character offset -> byte offset, for every boundary a span may name.
    byte_at = [0]
    for char in text:
        byte_at.append(byte_at[-1] + len(char.encode("utf-8")))
    tokens = []
    for span, string in zip(spans, strings, strict=True):
        if span.special or span.start is None or span.stop is None:
            tokens.append(
                {
                    "id": span.id,
                    "text": string,
                    "special": span.special,
                    "start": None,
                    "stop": None,
                }
            )
            continue
        start, stop = byte_at[span.start], byte_at[span.stop]
        piece = encoded[start:stop].decode("utf-8", errors="replace")
        tokens.append(
            {"id": span.id, "text": piece, "special": False, "start": start, "stop": stop}
        )
    return tokens


async def tokenize(registry: ModelRegistry, body: TokenizeRequest) -> Response:
    tokenizer = resolve(registry, body.model, TextTokenizer, TOKENIZER)
    if body.prompt_name is not None:
        raise InvalidInput(
            "prompt_name is not supported on /tokenize: prepend the prompt to the text",
            param="prompt_name",
        )
    texts = batch_of(body.inputs)
    result = []
    for text in texts:
        spans = await tokenizer.token_spans(text, body.add_special_tokens)
        strings = await tokenizer.token_strings([span.id for span in spans])
        result.append(await asyncio.to_thread(simple_tokens, text, spans, strings))
    # In a thread: a batch of long texts' tokens is a large body to write.
    return await asyncio.to_thread(json_response, result)


async def decode(registry: ModelRegistry, body: DecodeRequest) -> Response:
    tokenizer = resolve(registry, body.model, TextTokenizer, TOKENIZER)
    ids = body.ids
    batch = [ids] if not ids or isinstance(ids[0], int) else batch_of(ids, "ids")
    texts = []
    for token_ids in batch:
        try:
            texts.append(await tokenizer.detokenize(token_ids, body.skip_special_tokens))
        except InvalidInput as exc:  # the ids are the request's only input: name them
            raise InvalidInput(exc.message, param="ids") from None
    return json_response(texts)


def decode_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    async def decode_route(body: DecodeRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, decode(registry, body))

    router.add_api_route(
        TEI_DECODE.path,
        decode_route,
        methods=["POST"],
        response_model=list[str],
        name="decode",
        summary="Token ids (a list, or a batch of lists) back to text",
    )
    return router
