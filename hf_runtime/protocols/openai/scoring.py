"""POST /rerank and POST /score: text pairs scored by a model with the Scorer capability.

Served by the OpenAI app (so at /v1/... and /openai/v1/...) and, for clients of vLLM, Jina
and Cohere that call them without the "/v1" prefix or under "/v2", at their root aliases
(hf_runtime.routes) by the root app (openai.app.make_root_app). Errors have OpenAI's shape on
every path.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import LeanJSONRoute, json_bytes, render_response
from hf_runtime.protocols.openai.lookup import (
    Endpoint,
    mount_prefix,
    require_scorer,
    resolve_model,
)
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.scoring_schemas import (
    RerankRequest,
    RerankResponse,
    ScoreRequest,
    ScoreResponse,
    check_count,
)
from hf_runtime.routes import OPENAI_RERANK, OPENAI_SCORE
from hf_runtime.types import ScoreResult


def _usage(result: ScoreResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}


def _rerank_json(model: str, body: RerankRequest, result: ScoreResult) -> bytes:
    """The whole response body, highest score first; ties keep the documents' order (a
    stable sort). In a thread for many documents: they take a while to sort and format."""
    scores = result.scores
    order = sorted(range(len(scores)), key=lambda index: -scores[index])
    results: list[dict[str, Any]] = []
    for index in order[: body.top_n or len(order)]:
        entry: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if body.return_documents is not False:
            entry["document"] = {"text": body.documents[index]}
        results.append(entry)
    response = {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": model,
        "usage": _usage(result),
        "results": results,
    }
    return json_bytes(response)


def _score_json(model: str, result: ScoreResult) -> bytes:
    response = {
        "id": f"score-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": model,
        "data": [
            {"index": index, "object": "score", "score": score}
            for index, score in enumerate(result.scores)
        ],
        "usage": _usage(result),
    }
    return json_bytes(response)


async def rerank(registry: ModelRegistry, body: RerankRequest, request: Request) -> Response:
    log_ignored_fields(body, "rerank")
    body.check()
    model = resolve_model(registry, body.model)
    scorer = require_scorer(model, Endpoint.rerank, mount_prefix(request, Endpoint.rerank))
    check_count(len(body.documents), scorer.max_pairs, "documents", model.name)
    result = await scorer.score([body.query], body.documents)
    content = await render_response(
        _rerank_json, model.name, body, result, values=len(result.scores)
    )
    return Response(content=content, media_type="application/json")


async def score(registry: ModelRegistry, body: ScoreRequest, request: Request) -> Response:
    log_ignored_fields(body, "score")
    first, second = body.texts()
    model = resolve_model(registry, body.model)
    scorer = require_scorer(model, Endpoint.score, mount_prefix(request, Endpoint.score))
    check_count(len(first), scorer.max_pairs, "text_1", model.name)
    check_count(len(second), scorer.max_pairs, "text_2", model.name)
    result = await scorer.score(first, second)
    content = await render_response(_score_json, model.name, result, values=len(result.scores))
    return Response(content=content, media_type="application/json")


def scoring_router(
    registry: ModelRegistry, *, root: bool = False, skip: frozenset[str] = frozenset()
) -> APIRouter:
    """The routes under the OpenAI app's mounts, or (`root`) at their root aliases; not at
    the paths in `skip` (served by another router: protocols.tei.shared_paths)."""
    router = APIRouter(route_class=LeanJSONRoute)  # an encoder hot path

    async def rerank_route(body: RerankRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, rerank(registry, body, request))

    async def score_route(body: ScoreRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, score(registry, body, request))

    for path in OPENAI_RERANK.app_paths(root):
        if path in skip:
            continue
        router.add_api_route(
            path,
            rerank_route,
            methods=["POST"],
            response_model=RerankResponse,
            name="rerank",
            summary="Rerank documents by relevance to a query",
        )
    for path in OPENAI_SCORE.app_paths(root):
        router.add_api_route(
            path,
            score_route,
            methods=["POST"],
            response_model=ScoreResponse,
            name="score",
            summary="Score text pairs (1:1, 1:N or N:N)",
        )
    return router
