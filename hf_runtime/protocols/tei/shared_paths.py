"""The root /rerank and /tokenize, where vLLM's bodies and TEI's share a path: the body
tells them apart, and each is answered in its own protocol's shapes and errors.

  - /rerank: `texts` is TEI's ({query, texts, raw_scores, return_text} -> [{index, score,
    text?}]); `documents` is vLLM's and Cohere's (protocols.openai.scoring);
  - /tokenize: `inputs` is TEI's (-> per text, its tokens with their spans); `prompt` or
    `messages` is vLLM's (protocols.openai.tokenize).
A body that is neither is a 400 in OpenAI's shape (the path's, hf_runtime.routes) naming
both. The root app (protocols.openai.app.make_root_app) mounts these in place of the plain
vLLM routes at these two paths; "/v1/..." and "/v2/rerank" stay vLLM's alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, RootModel, TypeAdapter, ValidationError

from hf_runtime.errors import ErrorKind, HFRuntimeError, InvalidInput
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.errors import tei_body, tei_status, validation_message
from hf_runtime.protocols.json_body import JSONBodyError, JSONBodyRoute
from hf_runtime.protocols.openai import scoring as vllm_scoring
from hf_runtime.protocols.openai import tokenize as vllm_tokenize
from hf_runtime.protocols.openai.scoring_schemas import RerankRequest as VLLMRerankRequest
from hf_runtime.protocols.openai.scoring_schemas import RerankResponse as VLLMRerankResponse
from hf_runtime.protocols.openai.tokenize_schemas import TokenizeRequest as VLLMTokenizeRequest
from hf_runtime.protocols.openai.tokenize_schemas import (
    TokenizeResponse as VLLMTokenizeResponse,
)
from hf_runtime.protocols.tei import predict as tei_predict
from hf_runtime.protocols.tei import tokens as tei_tokens
from hf_runtime.protocols.tei.errors import tei_error
from hf_runtime.protocols.tei.schemas import Rank, RerankRequest, SimpleToken, TokenizeRequest
from hf_runtime.routes import OPENAI_RERANK, OPENAI_TOKENIZE
from hf_runtime.routes import TEI_SHARED_PATHS as TEI_SHARED

Handler = Callable[[Any], Awaitable[Response]]


def _validated(model: type[BaseModel], body: Any) -> Any:
    """`body` as `model`, or the RequestValidationError FastAPI would have raised."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


async def _tei(model: type[BaseModel], body: Any, handler: Handler) -> Response:
    """A TEI body: validated and handled, every error in TEI's shape and status."""
    try:
        return await handler(_validated(model, body))
    except HFRuntimeError as exc:
        return tei_error(exc)
    except RequestValidationError as exc:
        message, _ = validation_message(exc)
        kind = ErrorKind.INVALID_INPUT
        return JSONResponse(tei_body(kind, message), status_code=tei_status(kind))


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except JSONBodyError as exc:
        raise InvalidInput(f"Invalid JSON: request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object (Content-Type: application/json)")
    return body


def _neither(model: type[BaseModel], body: dict[str, Any], other: str) -> NoReturn:
    """A body of neither shape: vLLM's error for it (the path's own protocol), naming TEI's
    field as the other way."""
    try:
        _validated(model, body)
    except RequestValidationError as exc:
        message, param = validation_message(exc)
        raise InvalidInput(f"{message}; {other}", param=param) from None
    raise InvalidInput(f"the body fits no shape; {other}")


def _either(first: type[BaseModel], second: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body: one of the two shapes."""
    # Imported here: protocols.openapi imports the gateway, which imports the OpenAI package.
    from hf_runtime.protocols.openapi import inline_defs

    schema = inline_defs(TypeAdapter(first | second).json_schema())  # type: ignore[operator]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class RerankResponseOrTEIRanks(RootModel[VLLMRerankResponse | list[Rank]]):
    """vLLM's (Cohere's) rerank answer, or TEI's ranks (for a body with `texts`)."""


class TokenizeResponseOrTEITokens(RootModel[VLLMTokenizeResponse | list[list[SimpleToken]]]):
    """vLLM's tokenize answer, or TEI's tokens per text (for a body with `inputs`)."""


def shared_paths_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    async def rerank_route(request: Request) -> Response:
        body = await _json_object(request)
        if "texts" in body:
            work = _tei(RerankRequest, body, lambda b: tei_predict.rerank(registry, b))
        elif "documents" in body:
            parsed = _validated(VLLMRerankRequest, body)
            work = vllm_scoring.rerank(registry, parsed, request)
        else:
            _neither(VLLMRerankRequest, body, "or texts (text-embeddings-inference's rerank)")
        return await cancel_on_disconnect(request, work)

    async def tokenize_route(request: Request) -> Response:
        body = await _json_object(request)
        if "inputs" in body:
            work = _tei(TokenizeRequest, body, lambda b: tei_tokens.tokenize(registry, b))
        elif "prompt" in body or "messages" in body:
            work = vllm_tokenize.tokenize(registry, _validated(VLLMTokenizeRequest, body))
        else:
            raise InvalidInput(
                "prompt (a text) or messages (a chat) is required (vLLM's tokenize), or inputs "
                "(text-embeddings-inference's)",
                param="prompt",
            )
        return await cancel_on_disconnect(request, work)

    (rerank_path,) = [p for p in OPENAI_RERANK.root_aliases if p in TEI_SHARED]
    (tokenize_path,) = [p for p in OPENAI_TOKENIZE.root_aliases if p in TEI_SHARED]
    router.add_api_route(
        rerank_path,
        rerank_route,
        methods=["POST"],
        name="rerank",
        response_model=RerankResponseOrTEIRanks,
        summary="Rerank documents by relevance to a query (vLLM's / Cohere's body), or texts "
        "(TEI's body, answered [{index, score, text?}])",
        openapi_extra=_either(VLLMRerankRequest, RerankRequest),
    )
    router.add_api_route(
        tokenize_path,
        tokenize_route,
        methods=["POST"],
        name="tokenize",
        response_model=TokenizeResponseOrTEITokens,
        summary="Tokenize a text or a chat (vLLM's body), or texts (TEI's body, answered "
        "with each token's id, text, special flag and byte span)",
        openapi_extra=_either(VLLMTokenizeRequest, TokenizeRequest),
    )
    return router
