"""Finding the model a request names, and checking it can serve the endpoint asked."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from fastapi import Request

from hf_runtime.errors import InvalidInput
from hf_runtime.model import (
    C,
    Embedder,
    ModelRegistry,
    Pooler,
    Scorer,
    ServedModel,
    SparseEmbedder,
    TextGenerator,
    capable_models,
    require_capability,
    require_ready,
)
from hf_runtime.routes import (
    MOUNTS,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RERANK,
    OPENAI_RESPONSES,
    OPENAI_SCORE,
    V1_PREDICT,
    V2_INFER,
    Surface,
    openai_routes_naming,
)


class Endpoint(str, Enum):
    """OpenAI endpoints, valued by their route below the mount prefix."""

    completions = OPENAI_COMPLETIONS.path
    chat = OPENAI_CHAT.path
    embeddings = OPENAI_EMBEDDINGS.path
    rerank = OPENAI_RERANK.path
    score = OPENAI_SCORE.path
    responses = OPENAI_RESPONSES.path

    @property
    def label(self) -> str:
        return {"completions": "completions", "chat": "chat completions"}.get(self.name, self.name)


def mount_prefix(request: Request, endpoint: Endpoint) -> str:
    """The prefix this app is mounted at ("/v1" or "/openai/v1"), for messages that name routes.
    The root aliases ("/rerank", "/v2/rerank") name the "/v1" routes."""
    mounts = MOUNTS[Surface.OPENAI]
    path = request.scope["path"]  # the full path (a mount keeps it): no URL built per request
    prefix = path[: -len(endpoint.value)] if path.endswith(endpoint.value) else mounts[0]
    return prefix if prefix in mounts else mounts[0]


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


def resolve_capable_model(
    registry: ModelRegistry, requested: str | None, capable: Callable[[ServedModel], bool]
) -> ServedModel:
    """resolve_model, except that with several models served and none named, the one model
    that is `capable` of the request serves it (as TEI's routes pick theirs). With none or
    several such, `model` is required: the 400 names the capable ones (else every model)."""
    if requested is None and len(registry.names()) > 1:
        able = capable_models(registry, capable)
        if len(able) == 1:
            requested = able[0]
        elif able:
            raise InvalidInput(
                "model is required when several models are served; one of: " + ", ".join(able),
                param="model",
            )
    return resolve_model(registry, requested)


def _alternatives(model: ServedModel, prefix: str) -> str:
    """The routes that would serve this model, for messages."""
    for capability in (Embedder, TextGenerator, Scorer):
        if model.capability(capability) is not None:
            return openai_routes_naming(capability.__name__, prefix)
    v1, v2 = (route.paths[0].replace("{name}", model.name) for route in (V1_PREDICT, V2_INFER))
    return f"{v1} (KServe V1) or {v2} (V2)"


def _require(model: ServedModel, kind: type[C], wanted: str, prefix: str) -> C:
    """require_capability, the routes to name worked out only for the refusal (this runs on
    every request)."""
    require_ready(model)
    found = model.capability(kind)
    if found is not None:
        return found
    return require_capability(model, kind, wanted=wanted, alternatives=_alternatives(model, prefix))


def require_generator(model: ServedModel, endpoint: Endpoint, prefix: str) -> TextGenerator:
    return _require(model, TextGenerator, endpoint.label, prefix)


def require_embedder(model: ServedModel, prefix: str) -> Embedder:
    return _require(model, Embedder, "embeddings", prefix)


def require_scorer(model: ServedModel, endpoint: Endpoint, prefix: str) -> Scorer:
    return _require(model, Scorer, endpoint.label, prefix)


def require_pooler(model: ServedModel, wanted: str) -> Pooler:
    """vLLM's pooling routes (/pooling, /classify) are at the root: their alternatives are
    named under "/v1"."""
    return require_capability(
        model, Pooler, wanted=wanted, alternatives=_alternatives(model, MOUNTS[Surface.OPENAI][0])
    )


def require_sparse_embedder(model: ServedModel, prefix: str) -> SparseEmbedder:
    """A sparse embedding model, for `encoding_format: "sparse"`; a dense one is told to ask
    for float or base64."""
    alternatives = (
        'encoding_format "float" or "base64"'
        if model.capability(Embedder) is not None
        else _alternatives(model, prefix)
    )
    return require_capability(
        model, SparseEmbedder, wanted='sparse embeddings (encoding_format "sparse")',
        alternatives=alternatives,
    )  # fmt: skip
