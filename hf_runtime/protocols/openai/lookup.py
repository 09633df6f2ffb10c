"""Finding the model a request names, and checking it can serve the endpoint asked."""

from __future__ import annotations

from enum import Enum

from fastapi import Request

from hf_runtime.errors import InvalidInput, ModelNotReady, Unsupported
from hf_runtime.model import ModelRegistry, ServedModel, TextGenerator

EMBEDDING_TASK = "text_embedding"


class Endpoint(str, Enum):
    """OpenAI endpoints, valued by their route below the mount prefix."""

    completions = "/completions"
    chat = "/chat/completions"
    embeddings = "/embeddings"

    @property
    def label(self) -> str:
        return {"completions": "completions", "chat": "chat completions"}.get(self.name, self.name)


def mount_prefix(request: Request, endpoint: Endpoint) -> str:
    """The prefix this app is mounted at ("/v1" or "/openai/v1"), for messages that name routes."""
    path = request.url.path
    return path[: -len(endpoint.value)] if path.endswith(endpoint.value) else "/v1"


def resolve_model(registry: ModelRegistry, requested: str | None) -> ServedModel:
    """The named model, ready to serve.

    `model` may be omitted only when exactly one model is served (then it is that one); with
    several, OpenAI's rule applies and it is required. Unknown: 404; still loading: 503.
    """
    if requested is None:
        names = registry.names()
        if len(names) != 1:
            raise InvalidInput(
                "model is required when several models are served; one of: " + ", ".join(names),
                param="model",
            )
        requested = names[0]
    model = registry.get(requested)
    if not model.ready:
        raise ModelNotReady(model.name)
    return model


def _alternatives(model: ServedModel, prefix: str) -> str:
    if model.task == EMBEDDING_TASK:
        return f"{prefix}/embeddings"
    if model.generator is not None:
        return f"{prefix}/completions or {prefix}/chat/completions"
    return f"/v1/models/{model.name}:predict (KServe V1) or /v2/models/{model.name}/infer (V2)"


def require_generator(model: ServedModel, endpoint: Endpoint, prefix: str) -> TextGenerator:
    generator = model.generator
    if generator is None:
        raise Unsupported(
            f"Model {model.name} ({model.task}) does not support {endpoint.label}; "
            f"use {_alternatives(model, prefix)}",
            param="model",
        )
    return generator


def require_embeddings(model: ServedModel, prefix: str) -> ServedModel:
    if model.task != EMBEDDING_TASK:
        raise Unsupported(
            f"Model {model.name} ({model.task}) does not support embeddings; "
            f"use {_alternatives(model, prefix)}",
            param="model",
        )
    return model
