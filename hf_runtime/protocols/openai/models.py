"""GET /models and GET /models/{name}.

The body is the merged shape the KServe V1 app also serves at /v1/models (mounted first, it
wins there): OpenAI's fields plus KServe's, so either client reads either prefix. Each model's
card: `hf_runtime.protocols.model_cards`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hf_runtime.model import ModelRegistry, ServedModel
from hf_runtime.protocols.model_cards import model_card
from hf_runtime.routes import OPENAI_MODEL, OPENAI_MODELS


def models_list_body(registry: ModelRegistry, created: int) -> dict[str, Any]:
    names = registry.names()
    return {
        "models": names,
        "object": "list",
        "data": [model_card(registry.get(name), created) for name in names],
    }


def model_body(model: ServedModel, created: int) -> dict[str, Any]:
    """Unlike KServe's V1 route (503 while loading), this answers 200 with `ready: false`:
    OpenAI clients use it to check that a model exists. A model that is not ready adds its
    `state` (LOADING, FAILED, UNAVAILABLE) and, when known, the `reason`."""
    status = model.status()
    body = {"name": model.name, "ready": status.ready, **model_card(model, created)}
    if not status.ready:
        body["state"] = status.state.value
        if status.reason:
            body["reason"] = status.reason
    return body


def models_router(registry: ModelRegistry, created: int) -> APIRouter:
    router = APIRouter()

    @router.get(OPENAI_MODELS.path)
    async def list_models() -> dict[str, Any]:
        return models_list_body(registry, created)

    @router.get(OPENAI_MODEL.path)
    async def retrieve_model(name: str) -> dict[str, Any]:
        return model_body(registry.get(name), created)  # unknown: ModelNotFound -> 404

    return router
