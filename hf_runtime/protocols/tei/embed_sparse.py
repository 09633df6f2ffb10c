"""POST /embed_sparse: a sparse (SPLADE) model's vectors, TEI's way: per input the non-zero
entries as `[{"index", "value"}]`, by ascending index."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, StrictInt

from hf_runtime.model import ModelRegistry, SparseEmbedder
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.tei.embed import batch_of, json_response
from hf_runtime.protocols.tei.lookup import resolve
from hf_runtime.protocols.tei.schemas import EmbedSparseRequest
from hf_runtime.routes import TEI_EMBED_SPARSE
from hf_runtime.types import SparseEmbeddingResult

SPARSE_MODEL = "a sparse embedding model"


class SparseValue(BaseModel):
    index: StrictInt
    value: float


def sparse_values(result: SparseEmbeddingResult) -> Response:
    """The response body (in a thread: a batch of vocabulary-sized vectors takes a while)."""
    return json_response(
        [
            [{"index": i, "value": v} for i, v in zip(vector.indices, vector.values, strict=True)]
            for vector in result.vectors
        ]
    )


async def embed_sparse(registry: ModelRegistry, body: EmbedSparseRequest) -> Response:
    embedder = resolve(registry, body.model, SparseEmbedder, SPARSE_MODEL)
    result = await embedder.embed_sparse(
        batch_of(body.inputs), body.prompt_name, truncation=body.truncation()
    )
    return await run_in_threadpool(sparse_values, result)


def embed_sparse_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    async def embed_sparse_route(body: EmbedSparseRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, embed_sparse(registry, body))

    router.add_api_route(
        TEI_EMBED_SPARSE.path,
        embed_sparse_route,
        methods=["POST"],
        response_model=list[list[SparseValue]],
        name="embed_sparse",
        summary="Sparse (SPLADE) embeddings: each input's non-zero entries",
    )
    return router
