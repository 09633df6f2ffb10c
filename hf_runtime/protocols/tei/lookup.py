"""The model a TEI request is for: TEI serves one model and its requests name none."""

from __future__ import annotations

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.model import (
    C,
    ModelRegistry,
    ServedModel,
    capable_models,
    require_capability,
    require_ready,
)


def resolve(registry: ModelRegistry, requested: str | None, kind: type[C], wanted: str) -> C:
    """The capability `kind` of the model the request is for: the `model` it names, else the
    one served model, else the one served model that has `kind`. A model without it is TEI's
    424 ("model is not an embedding model"): Unsupported."""
    model = model_for(registry, requested, kind)
    if model.capability(kind) is None:
        require_ready(model)
        raise Unsupported(f"model {model.name} ({model.task}) is not {wanted}", param="model")
    return require_capability(model, kind)


def model_for(
    registry: ModelRegistry, requested: str | None, kind: type | None = None
) -> ServedModel:
    if requested is not None:
        return registry.get(requested)
    names = registry.names()
    if len(names) == 1:
        return registry.get(names[0])
    if kind is not None:
        able = capable_models(registry, lambda model: model.capability(kind) is not None)
        if len(able) == 1:
            return registry.get(able[0])
    raise InvalidInput(
        "several models are served: name one in the body's `model` field (one of: "
        + ", ".join(names)
        + ")",
        param="model",
    )
