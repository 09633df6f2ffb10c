"""POST /embed, /embed_all and /similarity: a text_embedding model's vectors, TEI's way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hf_runtime.errors import TooLarge
from hf_runtime.model import Embedder, ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.sse import dumps
from hf_runtime.protocols.tei.errors import EmptyBatch
from hf_runtime.protocols.tei.lookup import resolve
from hf_runtime.protocols.tei.schemas import (
    MAX_CLIENT_BATCH_SIZE,
    EmbedAllRequest,
    EmbedRequest,
    SimilarityRequest,
)
from hf_runtime.routes import TEI_EMBED, TEI_EMBED_ALL, TEI_SIMILARITY

EMBEDDING_MODEL = "an embedding model"


def batch_of(inputs: Any, param: str = "inputs") -> list[Any]:
    """TEI's `inputs` as a batch: one text or token-id list becomes a batch of one. Empty:
    EmptyBatch; over max_client_batch_size: TooLarge (TEI's 413 "validation")."""
    if isinstance(inputs, str) or (inputs and all(isinstance(x, int) for x in inputs)):
        return [inputs]
    if not inputs:
        raise EmptyBatch("Batch is empty", param=param)
    check_batch_size(len(inputs))
    return list(inputs)


def check_batch_size(size: int, limit: int = MAX_CLIENT_BATCH_SIZE) -> None:
    if size > limit:
        raise TooLarge(f"batch size {size} > maximum allowed batch size {limit}")


def cosine_similarities(source: Sequence[float], others: Sequence[Sequence[float]]) -> list[float]:
    """Dot products of unit vectors (their cosines), summed in float64."""
    left = np.asarray(source, dtype=np.float64)
    return [float(v) for v in np.asarray(others, dtype=np.float64) @ left]


def json_response(payload: Any) -> Response:
    return Response(content=dumps(payload).encode("utf-8"), media_type="application/json")


async def embed(registry: ModelRegistry, body: EmbedRequest) -> Response:
    embedder = resolve(registry, body.model, Embedder, EMBEDDING_MODEL)
    inputs = batch_of(body.inputs)
    result = await embedder.embed(
        inputs,
        body.dimensions,
        body.prompt_name,
        truncation=body.truncation(),
        normalize=body.normalize,
    )
    return await run_in_threadpool(json_response, result.embeddings)


async def embed_all(registry: ModelRegistry, body: EmbedAllRequest) -> Response:
    embedder = resolve(registry, body.model, Embedder, EMBEDDING_MODEL)
    inputs = batch_of(body.inputs)
    result = await embedder.embed_tokens(inputs, body.prompt_name, truncation=body.truncation())
    return await run_in_threadpool(json_response, result.embeddings)


async def similarity(registry: ModelRegistry, body: SimilarityRequest) -> Response:
    """TEI's scores: the cosine of the source sentence's embedding with each sentence's."""
    embedder = resolve(registry, body.model, Embedder, EMBEDDING_MODEL)
    sentences = body.inputs.sentences
    if not sentences:
        raise EmptyBatch("`sentences` cannot be empty", param="inputs.sentences")
    check_batch_size(len(sentences) + 1)
    parameters = body.parameters
    result = await embedder.embed(
        [body.inputs.source_sentence, *sentences],
        None,
        parameters.prompt_name if parameters else None,
        truncation=body.truncation(),
        normalize=True,  # unit vectors: their dot product is the cosine
    )
    vectors = result.embeddings
    scores = await asyncio.to_thread(cosine_similarities, vectors[0], vectors[1:])
    return json_response(scores)


def embed_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    async def embed_route(body: EmbedRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, embed(registry, body))

    async def embed_all_route(body: EmbedAllRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, embed_all(registry, body))

    async def similarity_route(body: SimilarityRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, similarity(registry, body))

    router.add_api_route(
        TEI_EMBED.path,
        embed_route,
        methods=["POST"],
        response_model=list[list[float]],
        name="embed",
        summary="Embeddings (pooled, normalised unless `normalize` is false)",
    )
    router.add_api_route(
        TEI_EMBED_ALL.path,
        embed_all_route,
        methods=["POST"],
        response_model=list[list[list[float]]],
        name="embed_all",
        summary="Every token's vector, unpooled",
    )
    router.add_api_route(
        TEI_SIMILARITY.path,
        similarity_route,
        methods=["POST"],
        response_model=list[float],
        name="similarity",
        summary="Cosine similarity of source_sentence with each of sentences",
    )
    return router
