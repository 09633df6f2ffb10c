"""The protocol-neutral data plane: what KServe V1, V2 REST and V2 gRPC all mean, decided once.

Adapters decode their wire format into `hf_runtime.dataplane.types`, call one method here and
encode what it returns (MLServer's DataPlane pattern). The rules live here and nowhere else:
  - an unknown model is ModelNotFound (404 / NOT_FOUND); a loading one ModelNotReady (503 /
    UNAVAILABLE); a FAILED one ModelLoadFailed (503 / UNAVAILABLE, saying why); a model
    without the capability a request needs Unsupported (400), naming the routes that do
    serve it: texts need a Predictor, text pairs a Scorer;
  - versions: a model that declares none answers "Model versioning not supported yet." (501,
    as KServe); an undeclared version of a versioned model is a 404;
  - inference takes exactly one non-empty BYTES input (KServe would silently use inputs[0]),
    whose elements must be UTF-8 text, or text pairs: two BYTES inputs named `text` and
    `text_pair` of equal length (V1: instances that are {"text", "text_pair"} objects),
    answered with one score per pair (FP64 `output-0`);
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
    RequestTensor,
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
    ModelRepository,
    Predictor,
    Scorer,
    ServedModel,
    TextGenerator,
    require_capability,
    require_ready,
)
from hf_runtime.routes import OPENAI_CHAT, openai_routes_naming
from hf_runtime.types import (
    OUTPUT_OPTION_KEYS,
    PAIR_INPUTS,
    ModelMetadata,
    ModelStatus,
    OutputOptions,
    OutputTensor,
    Prediction,
    RepositoryEntry,
    ScoreResult,
    TextPair,
    parse_output_options,
)

SERVER_NAME = "hf-runtime"
EXTENSIONS = ["binary_tensor_data"]
SCORE_OUTPUT = "output-0"  # the one output of a pair request: a rerank model's declared output
Instances = list[str] | list[TextPair]
# V2 request parameters that concern the transport, not the model's outputs (Triton/KServe).


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
        """Answering at all is being live, unless a model's engine has died."""
        return self._registry.live

    def ready(self) -> bool:
        """Every model has loaded (the registry's own readiness)."""
        return self._registry.ready

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(SERVER_NAME, package_version(), list(EXTENSIONS))

    def model_names(self) -> list[str]:
        return self._registry.names()

    # ------------------------------------------------------------ models

    def model_ready(self, name: str, model_version: str | None = None) -> bool:
        """False unless READY; ModelNotFound for an unknown model, and the version errors
        (checked once the model has loaded: versions come from its metadata)."""
        model = self._registry.get(name)
        if not model.ready:
            return False
        _check_version(model, model_version)
        return True

    def require_ready(self, name: str, model_version: str | None = None) -> None:
        """`model_ready`, raising the 503 that says why not (loading, or failed and why)."""
        model = self._registry.get(name)
        require_ready(model)
        _check_version(model, model_version)

    def model_status(self, name: str) -> ModelStatus:
        """The model's state and reason; ModelNotFound for an unknown model."""
        return self._registry.get(name).status()

    def model_metadata(self, name: str, model_version: str | None = None) -> ModelMetadata:
        """Raises ModelNotReady while loading."""
        model = self._registry.get(name)
        metadata = model.metadata()
        _check_version(model, model_version, metadata.versions)
        return replace(metadata, name=model.name)

    def predictor(self, name: str, model_version: str | None = None) -> Predictor:
        """The model's Predictor, or the 404 / 501 / 503 / 400 that explains why not."""
        model = self._registry.get(name)
        _check_version(model, model_version)
        try:
            predictor = require_capability(model, Predictor)
        except Unsupported:
            routes = _text_alternatives(model)
            if not routes:
                raise
            # Raises again, now naming the routes that serve this model.
            predictor = require_capability(model, Predictor, alternatives=routes)
        return predictor

    def scorer(self, name: str, model_version: str | None = None) -> Scorer:
        """The model's Scorer (text pairs), or the 404 / 501 / 503 / 400 that explains why not."""
        model = self._registry.get(name)
        _check_version(model, model_version)
        try:
            return require_capability(model, Scorer, wanted="text pairs")
        except Unsupported:
            texts = model.capability(Predictor) is not None
            routes = "plain texts" if texts else _openai_routes(model)
            # Raises again, now naming what this model does serve.
            return require_capability(model, Scorer, wanted="text pairs", alternatives=routes)

    def check_inference(self, name: str, model_version: str | None = None) -> None:
        """Whether `name` can run inference at all (texts or pairs): adapters call it before
        reading a body, so a loading model answers 503 whatever was sent."""
        model = self._registry.get(name)
        _check_version(model, model_version)
        if model.ready and model.capability(Scorer) is not None:
            return
        self.predictor(name, model_version)

    # ------------------------------------------------------------ model repository

    async def repository_index(
        self, repository_name: str = "", ready_only: bool = False
    ) -> list[RepositoryEntry]:
        """Every model the server knows, with its state (configured ones and the
        model repository's folders)."""
        return await self._repository(repository_name).index(ready_only)

    async def load_model(self, name: str, repository_name: str = "") -> None:
        """Idempotent; a failed load is a 400 naming why (its state turns FAILED)."""
        await self._repository(repository_name).load(name)

    async def unload_model(self, name: str, repository_name: str = "") -> None:
        """Returns once the model's requests in flight ended (bounded) and it is freed."""
        await self._repository(repository_name).unload(name)

    def _repository(self, repository_name: str) -> ModelRepository:
        if repository_name:
            raise InvalidInput(
                f"unknown repository {repository_name!r}: hf-runtime has one model "
                "repository; leave repository_name empty",
                param="repository_name",
            )
        if not isinstance(self._registry, ModelRepository):
            raise NotImplementedFeature("this server does not load or unload models")
        return self._registry

    # ------------------------------------------------------------ inference

    async def predict(
        self, name: str, instances: Instances, parameters: dict[str, Any] | None = None
    ) -> Prediction:
        """KServe V1: texts in, the task's predictions (and extra tensors) out; text pairs in,
        one score each out. `parameters`: the body's optional output options."""
        options = output_options(parameters, "parameters")
        return await self._predict(name, None, instances, options)

    async def infer(
        self, name: str, model_version: str | None, request: InferenceRequest
    ) -> InferenceResponse:
        """Open Inference Protocol V2 inference, whatever the wire."""
        self.check_inference(name, model_version)
        instances = request_instances(name, request)
        # V2 request parameters are open-ended (Triton and KServe clients send their own, such
        # as priority or timeout, and KServe ignores what it does not know): only ours are read.
        options = output_options(request.parameters, "parameters", strict=False)
        prediction = await self._predict(name, model_version, instances, options)
        return InferenceResponse(
            model_name=name,
            model_version=model_version,
            id=request.id if request.id is not None else str(uuid.uuid4()),
            outputs=select_outputs(prediction.tensors, request.outputs),
        )

    async def _predict(
        self,
        name: str,
        model_version: str | None,
        instances: Instances,
        options: OutputOptions | None = None,
    ) -> Prediction:
        pairs = [i for i in instances if isinstance(i, TextPair)]
        if not pairs:
            texts = [i for i in instances if isinstance(i, str)]
            predictor = self.predictor(name, model_version)
            if options is None or options.empty:
                # Options off: the call every Predictor has always taken.
                return await predictor.predict(texts)
            return await predictor.predict(texts, options=options)
        if len(pairs) != len(instances):
            raise InvalidInput("send texts or text pairs, not both", param="instances")
        if options is not None and not options.empty:
            raise InvalidInput(
                "output options (return_labels, top_k) do not apply to text pairs",
                param="parameters",
            )
        scorer = self.scorer(name, model_version)
        if len(pairs) > scorer.max_pairs:
            raise InvalidInput(
                f"this request has {len(pairs)} text pairs; model {name} takes at most "
                f"{scorer.max_pairs} per request (max_queue_size): split it",
                param="instances",
            )
        result = await scorer.score([p.text for p in pairs], [p.text_pair for p in pairs])
        return score_prediction(result)


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
    """The OpenAI routes that serve a model, for the 400's message."""
    for capability in (TextGenerator, Embedder, Scorer):
        if model.capability(capability) is not None:
            return openai_routes_naming(capability.__name__, first=OPENAI_CHAT)
    return ""


def _text_alternatives(model: ServedModel) -> str:
    """What serves a model that takes no plain texts: pairs, or OpenAI's routes."""
    routes = _openai_routes(model)
    if model.capability(Scorer) is not None and model.capability(Embedder) is None:
        return (
            'text pairs: V1 instances {"text": ..., "text_pair": ...}, V2 BYTES inputs '
            f"{PAIR_INPUTS[0]!r} and {PAIR_INPUTS[1]!r}, or {routes}"
        )
    return routes


def output_options(parameters: Any, where: str, *, strict: bool = True) -> OutputOptions | None:
    """A request's validated output options (None when it has none); a bad value is a 400
    naming it, and so is an unknown key when `strict` (V1's `parameters`, our own extension)."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise InvalidInput(f"{where} must be an object, got {type(parameters).__name__}")
    unknown = sorted(set(parameters) - set(OUTPUT_OPTION_KEYS))
    if strict and unknown:
        raise InvalidInput(
            f"unknown {where} key(s) {', '.join(unknown)}; allowed: "
            + ", ".join(sorted(OUTPUT_OPTION_KEYS)),
            param=where,
        )
    try:
        return parse_output_options(parameters, where)
    except ValueError as exc:
        raise InvalidInput(str(exc), param=where) from None


def score_prediction(result: ScoreResult) -> Prediction:
    """Pair scores as V1 predictions (one float per pair) and V2's FP64 output."""
    scores = [float(score) for score in result.scores]
    return Prediction(scores, [OutputTensor(SCORE_OUTPUT, "FP64", [len(scores)], scores)])


def request_instances(model_name: str, request: InferenceRequest) -> Instances:
    """Texts (one BYTES input) or text pairs (BYTES inputs `text` and `text_pair`)."""
    inputs = request.inputs
    if len(inputs) == 2 and {t.name for t in inputs} == set(PAIR_INPUTS):
        by_name = {t.name: t for t in inputs}
        firsts, seconds = (_bytes_texts(model_name, by_name[name]) for name in PAIR_INPUTS)
        if len(firsts) != len(seconds):
            raise InvalidInput(
                f"inputs '{PAIR_INPUTS[0]}' and '{PAIR_INPUTS[1]}' must have as many elements "
                f"(one pair each), got {len(firsts)} and {len(seconds)}"
            )
        return [TextPair(a, b) for a, b in zip(firsts, seconds, strict=True)]
    if len(inputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs) or "none"
        raise InvalidInput(
            f"model {model_name} takes exactly one BYTES input, got {names}; text pairs take "
            f"two, named '{PAIR_INPUTS[0]}' and '{PAIR_INPUTS[1]}'"
        )
    return _bytes_texts(model_name, inputs[0])


def _bytes_texts(model_name: str, tensor: RequestTensor) -> list[str]:
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
