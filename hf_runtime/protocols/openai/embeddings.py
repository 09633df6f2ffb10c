"""POST /embeddings.

vLLM's `truncate_prompt_tokens` (and `truncation_side`) are served through the model's
pooler, the path vLLM's /pooling takes: the same vector, each input cut to that many tokens.
`truncation_side` alone is TEI's direction: the side the model's own rule cuts from."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.model import ModelRegistry, Pooler, ServedModel
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import LeanJSONRoute, json_bytes, render_response
from hf_runtime.protocols.openai.lookup import (
    Endpoint,
    mount_prefix,
    require_embedder,
    require_sparse_embedder,
    resolve_model,
)
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.schemas import SPARSE_ENCODING, EmbeddingRequest
from hf_runtime.routes import OPENAI_EMBEDDINGS
from hf_runtime.types import (
    EmbeddingResult,
    PoolingOptions,
    SparseEmbeddingResult,
    Truncation,
)


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 format: little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _embedding_json(
    model: str, result: EmbeddingResult | SparseEmbeddingResult, encoding_format: str
) -> bytes:
    """The whole response body (in a thread for many vectors: they take a while to format).
    Sparse vectors are `{"indices": [...], "values": [...]}` in place of the list of floats."""
    embeddings: list[Any]
    if isinstance(result, SparseEmbeddingResult):
        embeddings = [{"indices": v.indices, "values": v.values} for v in result.vectors]
    elif encoding_format == "base64":
        embeddings = [encode_base64(vector) for vector in result.embeddings]
    else:
        embeddings = result.embeddings
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": i, "embedding": embedding}
        for i, embedding in enumerate(embeddings)
    ]
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    return json_bytes(body)


async def _embed_truncated(
    model: ServedModel, inputs: list[str] | list[list[int]], body: EmbeddingRequest
) -> EmbeddingResult:
    """vLLM's `truncate_prompt_tokens`: served by the model's pooler, which cuts each input
    as vLLM's /pooling does (the vector is otherwise the one `embed` returns)."""
    pooler = model.capability(Pooler)
    if pooler is None or pooler.pooling_task != "embed":
        raise Unsupported(
            f"Model {model.name} ({model.task}) does not support truncate_prompt_tokens",
            param="truncate_prompt_tokens",
        )
    options = PoolingOptions(
        truncate_tokens=body.truncate_prompt_tokens,
        truncation_side=body.truncation_side,
        dimensions=body.dimensions,
        prompt_name=body.prompt_name,
    )
    pooled = await pooler.pool(inputs, options)
    return EmbeddingResult(pooled.outputs, pooled.prompt_tokens)


async def create_embeddings(
    registry: ModelRegistry, body: EmbeddingRequest, request: Request
) -> Response:
    log_ignored_fields(body, "embeddings")
    body.check()
    inputs = body.input_batch()
    model = resolve_model(registry, body.model)
    prefix = mount_prefix(request, Endpoint.embeddings)
    truncation = None if body.truncation_side is None else Truncation(side=body.truncation_side)
    if body.encoding_format == SPARSE_ENCODING:
        sparse = require_sparse_embedder(model, prefix)
        found = await sparse.embed_sparse(
            inputs, prompt_name=body.prompt_name, truncation=truncation
        )
        values = sum(len(vector.values) for vector in found.vectors)
        content = await render_response(
            _embedding_json, model.name, found, SPARSE_ENCODING, values=values
        )
        return Response(content=content, media_type="application/json")
    embedder = require_embedder(model, prefix)
    if body.truncate_prompt_tokens is not None:
        result = await _embed_truncated(model, inputs, body)
    else:
        result = await embedder.embed(
            inputs, body.dimensions, body.prompt_name, truncation=truncation
        )
    if body.dimensions is not None and any(len(v) < body.dimensions for v in result.embeddings):
        size = min(len(v) for v in result.embeddings)
        raise InvalidInput(
            f"dimensions ({body.dimensions}) exceeds the model's embedding size ({size})",
            param="dimensions",
        )
    values = sum(len(vector) for vector in result.embeddings)
    content = await render_response(
        _embedding_json, model.name, result, body.encoding_format or "float", values=values
    )
    return Response(content=content, media_type="application/json")


def embeddings_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=LeanJSONRoute)  # an encoder hot path

    @router.post(OPENAI_EMBEDDINGS.path, response_model=None)
    async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, create_embeddings(registry, body, request))

    return router
