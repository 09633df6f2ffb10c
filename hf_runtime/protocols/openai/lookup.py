"""Finding the model a request names, and checking it can serve the endpoint asked."""

from __future__ import annotations

from enum import Enum

from fastapi import Request

from hf_runtime.errors import InvalidInput
from hf_runtime.model import (
    Embedder,
    ModelRegistry,
    Scorer,
    ServedModel,
    TextGenerator,
    require_capability,
    require_ready,
)


class Endpoint(str, Enum):
    """OpenAI endpoints, valued by their route below the mount prefix."""

    completions = "/completions"
    chat = "/chat/completions"
    embeddings = "/embeddings"
    rerank = "/rerank"
    score = "/score"

    @property
    def label(self) -> str:
        return {"completions": "completions", "chat": "chat completions"}.get(self.name, self.name)


def mount_prefix(request: Request, endpoint: Endpoint) -> str:
    """The prefix this app is mounted at ("/v1" or "/openai/v1"), for messages that name routes.
    The root aliases ("/rerank", "/v2/rerank") name the "/v1" routes."""
    path = request.url.path
    prefix = path[: -len(endpoint.value)] if path.endswith(endpoint.value) else "/v1"
    return prefix if prefix in ("/v1", "/openai/v1") else "/v1"


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
    require_ready(model)
    return model


def _alternatives(model: ServedModel, prefix: str) -> str:
    """The routes that would serve this model, for messages."""
    if model.capability(Embedder) is not None:
        return f"{prefix}/embeddings"
    if model.capability(TextGenerator) is not None:
        return f"{prefix}/completions or {prefix}/chat/completions"
    if model.capability(Scorer) is not None:
        return f"{prefix}/rerank or {prefix}/score"
    return f"/v1/models/{model.name}:predict (KServe V1) or /v2/models/{model.name}/infer (V2)"


def require_generator(model: ServedModel, endpoint: Endpoint, prefix: str) -> TextGenerator:
    return require_capability(
        model, TextGenerator, wanted=endpoint.label, alternatives=_alternatives(model, prefix)
    )


def require_embedder(model: ServedModel, prefix: str) -> Embedder:
    return require_capability(
        model, Embedder, wanted="embeddings", alternatives=_alternatives(model, prefix)
    )


def require_scorer(model: ServedModel, endpoint: Endpoint, prefix: str) -> Scorer:
    return require_capability(
        model, Scorer, wanted=endpoint.label, alternatives=_alternatives(model, prefix)
    )
