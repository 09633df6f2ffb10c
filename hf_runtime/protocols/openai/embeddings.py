"""POST /embeddings."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hf_runtime.errors import InvalidInput
from hf_runtime.model import ModelRegistry
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
from hf_runtime.types import EmbeddingResult, SparseEmbeddingResult


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


async def create_embeddings(
    registry: ModelRegistry, body: EmbeddingRequest, request: Request
) -> Response:
    log_ignored_fields(body, "embeddings")
    body.check()
    inputs = body.input_batch()
    model = resolve_model(registry, body.model)
    prefix = mount_prefix(request, Endpoint.embeddings)
    if body.encoding_format == SPARSE_ENCODING:
        sparse = require_sparse_embedder(model, prefix)
        found = await sparse.embed_sparse(inputs, prompt_name=body.prompt_name)
        values = sum(len(vector.values) for vector in found.vectors)
        content = await render_response(
            _embedding_json, model.name, found, SPARSE_ENCODING, values=values
        )
        return Response(content=content, media_type="application/json")
    embedder = require_embedder(model, prefix)
    if body.prompt_name is None:
        result = await embedder.embed(inputs, body.dimensions)
    else:
        result = await embedder.embed(inputs, body.dimensions, prompt_name=body.prompt_name)
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
