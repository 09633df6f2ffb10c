"""The protocol-neutral data plane: what KServe V1, V2 REST and V2 gRPC all mean, decided once.

Adapters decode their wire format into `hf_runtime.dataplane.types`, call one method here and
encode what it returns (MLServer's DataPlane pattern). The rules live here and nowhere else:
  - an unknown model is ModelNotFound (404 / NOT_FOUND); a loading one ModelNotReady (503 /
    UNAVAILABLE); a model without the Predictor capability Unsupported (400), naming the
    routes that do serve it;
  - versions: a model that declares none answers "Model versioning not supported yet." (501,
    as KServe); an undeclared version of a versioned model is a 404;
  - inference takes exactly one non-empty BYTES input (KServe would silently use inputs[0]),
    whose elements must be UTF-8 text;
  - requested outputs filter and order the response; an unknown name is a 400;
  - a response id is the request's, or a fresh UUID.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from hf_runtime.dataplane.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    ServerMetadata,
)
from hf_runtime.errors import (
    ErrorKind,
    HFRuntimeError,
    InvalidInput,
    NotImplementedFeature,
    Unsupported,
)
from hf_runtime.model import (
    Embedder,
    ModelRegistry,
    Predictor,
    ServedModel,
    TextGenerator,
    require_capability,
)
from hf_runtime.types import ModelMetadata, OutputTensor, Prediction

SERVER_NAME = "hf-runtime"
EXTENSIONS = ["binary_tensor_data"]


class ModelVersionNotFound(HFRuntimeError):
    """A version the (versioned) model does not declare."""

    kind = ErrorKind.NOT_FOUND


@functools.cache
def package_version() -> str:
    try:
        return version("hf-runtime")
    except PackageNotFoundError:
        return "0+unknown"


class DataPlane:
    """Inference and metadata over a model registry, in no protocol's terms."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    # ------------------------------------------------------------ server

    def live(self) -> bool:
        return True  # answering at all is being live

    def ready(self) -> bool:
        """Every model has loaded (the registry's own readiness)."""
        return self._registry.ready

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(SERVER_NAME, package_version(), list(EXTENSIONS))

    def model_names(self) -> list[str]:
        return self._registry.names()

    # ------------------------------------------------------------ models

    def model_ready(self, name: str, model_version: str | None = None) -> bool:
        """False while loading; ModelNotFound for an unknown model, and the version errors
        (checked once the model has loaded: versions come from its metadata)."""
        model = self._registry.get(name)
        if not model.ready:
            return False
        _check_version(model, model_version)
        return True

    def model_metadata(self, name: str, model_version: str | None = None) -> ModelMetadata:
        """Raises ModelNotReady while loading."""
        model = self._registry.get(name)
        metadata = model.metadata()
        _check_version(model, model_version, metadata.versions)
        return replace(metadata, name=model.name)

    def predictor(self, name: str, model_version: str | None = None) -> Predictor:
        """The model's Predictor, or the 404 / 501 / 503 / 400 that explains why not. Adapters
        call it before reading a body, so a loading model answers 503 whatever was sent."""
        model = self._registry.get(name)
        _check_version(model, model_version)
        try:
            predictor = require_capability(model, Predictor)
        except Unsupported:
            routes = _openai_routes(model)
            if not routes:
                raise
            # Raises again, now naming the routes that serve this model.
            predictor = require_capability(model, Predictor, alternatives=routes)
        return predictor

    # ------------------------------------------------------------ inference

    async def predict(self, name: str, instances: Sequence[str]) -> Prediction:
        """KServe V1: texts in, the task's predictions (and extra tensors) out."""
        return await self.predictor(name).predict(instances)

    async def infer(
        self, name: str, model_version: str | None, request: InferenceRequest
    ) -> InferenceResponse:
        """Open Inference Protocol V2 inference, whatever the wire."""
        predictor = self.predictor(name, model_version)
        texts = text_instances(name, request)
        prediction = await predictor.predict(texts)
        return InferenceResponse(
            model_name=name,
            model_version=model_version,
            id=request.id if request.id is not None else str(uuid.uuid4()),
            outputs=select_outputs(prediction.tensors, request.outputs),
        )


def _check_version(
    model: ServedModel, model_version: str | None, versions: list[str] | None = None
) -> None:
    if model_version is None:
        return
    if versions is None:
        versions = model.metadata().versions
    if not versions:
        raise NotImplementedFeature("Model versioning not supported yet.")
    if model_version not in versions:
        raise ModelVersionNotFound(
            f"Model {model.name} has no version {model_version}; versions: {', '.join(versions)}",
            param="model_version",
        )


def _openai_routes(model: ServedModel) -> str:
    """The OpenAI routes that serve a model V1/V2 cannot, for the 400's message."""
    if model.capability(TextGenerator) is not None:
        return "/v1/chat/completions or /v1/completions"
    if model.capability(Embedder) is not None:
        return "/v1/embeddings"
    return ""


def text_instances(model_name: str, request: InferenceRequest) -> list[str]:
    """The one BYTES input as the batch of texts."""
    inputs = request.inputs
    if len(inputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs) or "none"
        raise InvalidInput(f"model {model_name} takes exactly one BYTES input, got {names}")
    tensor = inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(
            f"model {model_name} takes text: input '{tensor.name}' must be BYTES, "
            f"got {tensor.datatype}"
        )
    if not tensor.data:
        raise InvalidInput(f"input '{tensor.name}' has no elements")
    return decode_text_elements(tensor.name, tensor.data)


def decode_text_elements(name: str, values: Sequence[Any]) -> list[str]:
    """BYTES elements (str from JSON, bytes from binary) as text; invalid UTF-8 is a 400."""
    texts: list[str] = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"input '{name}': element {index} is not UTF-8: {exc}") from exc
        texts.append(value)
    return texts


def select_outputs(
    tensors: list[OutputTensor], requested: list[RequestedOutput] | None
) -> list[OutputTensor]:
    """The requested outputs in the requested order (duplicates dropped), or all of them."""
    if not requested:
        return tensors
    by_name = {t.name: t for t in tensors}
    unknown = [o.name for o in requested if o.name not in by_name]
    if unknown:
        raise InvalidInput(
            f"unknown output '{unknown[0]}'; this model returns: {', '.join(by_name)}"
        )
    names = dict.fromkeys(o.name for o in requested)
    return [by_name[name] for name in names]
