"""POST /classify and POST /pooling: vLLM's pooling API, as vLLM 0.32 serves it.

At the root only (like vLLM, which serves neither under "/v1"), by the root app
(openai.app.make_root_app), with vLLM's (OpenAI's) error shape. Any model with the Pooler
capability answers /pooling with its one pooling task's output ("embed": the embedding
/v1/embeddings returns; "classify": the class scores /classify returns); /classify needs a
classifier. A request naming no model goes to the one served model, as in vLLM, or, with
several, to the only one that can answer it (a classifier for /classify). Bodies:
hf_runtime.protocols.openai.pooling_schemas.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.model import Embedder, ModelRegistry, Pooler, ServedModel
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.openai.lookup import require_pooler, resolve_capable_model
from hf_runtime.protocols.openai.pooling_schemas import (
    ClassificationRequest,
    ClassificationResponse,
    PoolingBaseRequest,
    PoolingRequest,
    PoolingResponse,
)
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.sse import dumps
from hf_runtime.routes import OPENAI_CLASSIFY, OPENAI_POOLING, openai_routes_naming
from hf_runtime.types import PooledResult


def _request_id(request: Request, body: PoolingBaseRequest, prefix: str) -> str:
    """vLLM's: the X-Request-Id header, else the body's request_id, else a random id."""
    base = request.headers.get("X-Request-Id") or body.request_id or uuid.uuid4().hex
    return f"{prefix}-{base}"


def _usage(result: PooledResult) -> dict[str, Any]:
    tokens = result.prompt_tokens
    return {
        "prompt_tokens": tokens,
        "total_tokens": tokens,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


def encode_pooled(values: list[float], embed_dtype: str, byte_order: str) -> str:
    """vLLM's base64 encoding: the values as `embed_dtype` in `byte_order`; bfloat16 is
    float32 rounded to its top 16 bits (nearest, ties to even), as torch converts it."""
    order = "<" if byte_order == "little" else ">"
    if embed_dtype == "bfloat16":
        bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        raw = rounded.astype(order + "u2").tobytes()
    else:
        size = "f2" if embed_dtype == "float16" else "f4"
        raw = np.asarray(values, dtype=np.float32).astype(order + size).tobytes()
    return base64.b64encode(raw).decode("ascii")


def _list_json(
    request_id: str, model: str, data: list[dict[str, Any]], result: PooledResult
) -> bytes:
    """The response both routes return: their `data` items in vLLM's list envelope."""
    response = {
        "id": request_id,
        "object": "list",
        "created": int(time.time()),
        "model": model,
        "data": data,
        "usage": _usage(result),
    }
    return dumps(response).encode("utf-8")


def _classify_json(request_id: str, model: str, result: PooledResult) -> bytes:
    labels = result.labels or [None] * len(result.outputs)
    data = [
        {"index": i, "label": label, "probs": probs, "num_classes": len(probs)}
        for i, (probs, label) in enumerate(zip(result.outputs, labels, strict=True))
    ]
    return _list_json(request_id, model, data, result)


def _pooling_json(request_id: str, model: str, body: PoolingRequest, result: PooledResult) -> bytes:
    encode: Any = (lambda v: v) if body.encoding_format == "float" else None
    if encode is None:
        dtype, order = body.embed_dtype, body.byte_order

        def encode(values: list[float]) -> str:
            return encode_pooled(values, dtype, order)

    data = [
        {"index": i, "object": "pooling", "data": encode(output)}
        for i, output in enumerate(result.outputs)
    ]
    return _list_json(request_id, model, data, result)


def _classifies(model: ServedModel) -> bool:
    pooler = model.capability(Pooler)
    return pooler is not None and pooler.pooling_task == "classify"


def _pools(task: str | None) -> Callable[[ServedModel], bool]:
    """Whether a model can answer /pooling for `task` (any pooling model when none is given)."""

    def pools(model: ServedModel) -> bool:
        pooler = model.capability(Pooler)
        return pooler is not None and task in (None, pooler.pooling_task)

    return pools


def _classifier(model: ServedModel) -> Pooler:
    pooler = require_pooler(model, "classification")
    if pooler.pooling_task != "classify":
        raise Unsupported(
            f"Model {model.name} ({model.task}) does not support classification: its pooled "
            f"output is an embedding; use {OPENAI_POOLING.root_aliases[0]} or "
            f"{openai_routes_naming(Embedder.__name__)}",
            param="model",
        )
    return pooler


async def classify(
    registry: ModelRegistry, body: ClassificationRequest, request: Request
) -> Response:
    log_ignored_fields(body, "classify")
    body.check()
    model = resolve_capable_model(registry, body.model, _classifies)
    pooler = _classifier(model)
    assert body.input is not None  # check() demands it
    result = await pooler.pool(body.input, body.pooling_options())
    request_id = _request_id(request, body, "classify")
    content = await run_in_threadpool(_classify_json, request_id, model.name, result)
    return Response(content=content, media_type="application/json")


async def pool(registry: ModelRegistry, body: PoolingRequest, request: Request) -> Response:
    log_ignored_fields(body, "pooling")
    body.check()
    model = resolve_capable_model(registry, body.model, _pools(body.task))
    pooler = require_pooler(model, "pooling")
    task = body.task or pooler.pooling_task
    if task != pooler.pooling_task:
        raise InvalidInput(
            f"Unsupported task: {task!r} Supported tasks: ({pooler.pooling_task!r},)",
            param="task",
        )
    assert body.input is not None  # check() demands it
    result = await pooler.pool(body.input, body.pooling_options())
    request_id = _request_id(request, body, "pooling")
    content = await run_in_threadpool(_pooling_json, request_id, model.name, body, result)
    return Response(content=content, media_type="application/json")


def pooling_router(registry: ModelRegistry, *, root: bool = False) -> APIRouter:
    """The routes at their root aliases (`root`); none under the OpenAI app's mounts."""
    router = APIRouter(route_class=JSONBodyRoute)

    async def classify_route(body: ClassificationRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, classify(registry, body, request))

    async def pooling_route(body: PoolingRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, pool(registry, body, request))

    for path in OPENAI_CLASSIFY.app_paths(root):
        router.add_api_route(
            path,
            classify_route,
            methods=["POST"],
            response_model=ClassificationResponse,
            name="classify",
            summary="Classify texts: class probabilities per input (vLLM's /classify)",
        )
    for path in OPENAI_POOLING.app_paths(root):
        router.add_api_route(
            path,
            pooling_route,
            methods=["POST"],
            response_model=PoolingResponse,
            name="pooling",
            summary="The model's pooled output per input (vLLM's /pooling)",
        )
    return router
