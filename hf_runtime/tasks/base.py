"""The encoder task-processor contract: request -> what to compute -> KServe-exact outputs.

A processor is LitServe-shaped: `decode_instances` validates the request, `forward_items` says
what the backend must compute for each tokenized text, `postprocess` turns the raw per-item
outputs into KServe V1 predictions and V2 tensors. Processors are stateless after
construction (safe to share between concurrent requests), use numpy only, and never touch
torch: the backend owns running the model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding, ForwardItem, ForwardSpec
from hf_runtime.config import ModelConfig
from hf_runtime.errors import InvalidInput, TooLarge
from hf_runtime.tasks.registry import Task
from hf_runtime.types import Datatype, OutputOptions, OutputTensor, Prediction, TensorSpec

if TYPE_CHECKING:
    from hf_runtime.tasks.class_scores import ClassifierHead

OUTPUT_NAME = "output-0"
INPUT_SPEC = TensorSpec(name="input-0", datatype="BYTES", shape=[-1])


@dataclass(frozen=True)
class ProcessorOptions:
    """The model's output flags; `with_request` applies one request's opt-in overrides."""

    return_probabilities: bool = False
    return_raw_logits: bool = False
    return_offsets_mapping: bool = False
    rerank_raw_scores: bool = False
    return_labels: bool = False
    top_k: int | None = None
    aggregation_strategy: str | None = None
    # text_embedding: the request's prompt (None: the model's default prompt); the model's
    # default prompt settings and whether vectors are L2-normalised (see ModelConfig).
    prompt_name: str | None = None
    default_prompt_name: str | None = None
    default_prompt: str | None = None
    normalize_embeddings: bool = True

    def with_request(self, request: OutputOptions | None) -> ProcessorOptions:
        """A copy with the request's options (those it sets) in place of the configured ones;
        a copy, so concurrent requests never see each other's options."""
        if request is None or request.empty:
            return self
        changes: dict[str, Any] = {}
        if request.return_labels is not None:
            changes["return_labels"] = request.return_labels
        if request.top_k is not None:
            changes["top_k"] = request.top_k
        if request.aggregation_strategy is not None:
            changes["aggregation_strategy"] = request.aggregation_strategy
        if request.prompt_name is not None:
            changes["prompt_name"] = request.prompt_name
        return replace(self, **changes)

    @classmethod
    def from_config(cls, config: ModelConfig) -> ProcessorOptions:
        return cls(
            return_probabilities=config.return_probabilities,
            return_raw_logits=config.return_raw_logits,
            return_offsets_mapping=config.return_offsets_mapping,
            rerank_raw_scores=config.rerank_raw_scores,
            return_labels=config.return_labels,
            top_k=config.top_k,
            aggregation_strategy=config.aggregation_strategy,
            default_prompt_name=config.default_prompt_name,
            default_prompt=config.default_prompt,
            normalize_embeddings=config.normalize_embeddings,
        )


class EncoderTaskProcessor(ABC):
    """One encoder task's semantics. Subclasses set `task` and implement `postprocess`."""

    task: ClassVar[Task]
    # Token-level tasks return an output for every position up to the request's longest text
    # (KServe pads each request to its longest and labels the pad positions too).
    pads_to_request_max: ClassVar[bool] = False

    def __init__(self, backend: EncoderBackend, options: ProcessorOptions) -> None:
        self.backend = backend
        self.options = options
        # A sequence-level classifier's head as vLLM's /classify scores it (set by the
        # classifying tasks' build_processor); None for every other task.
        self.classifier_head: ClassifierHead | None = None

    @property
    def forward_spec(self) -> ForwardSpec:
        """What the backend's forward returns for this task (logits unless overridden)."""
        return ForwardSpec()

    def decode_instances(
        self, instances: Any, options: ProcessorOptions | None = None
    ) -> list[str]:
        """The request's texts, or InvalidInput. A bare string is one text (as in KServe).
        `options` (the request's): a task may rewrite the texts with them (a prompt)."""
        if isinstance(instances, str):
            return [instances]
        if not isinstance(instances, (list, tuple)):
            raise InvalidInput(
                f"instances must be a list of strings, got {type(instances).__name__}",
                param="instances",
            )
        if not instances:
            raise InvalidInput("instances is empty: send at least one text", param="instances")
        for index, instance in enumerate(instances):
            if not isinstance(instance, str):
                raise InvalidInput(
                    f"instance {index} is {type(instance).__name__}: this {self.task.value} "
                    "model takes text, so every instance must be a string",
                    param="instances",
                )
        return list(instances)

    def prompt_length(self, options: ProcessorOptions | None = None) -> int:
        """Leading tokens of every text of a request that pooling leaves out (the model sets
        ForwardItem.prompt_length); 0 unless the task prepends a prompt it does not pool."""
        return 0

    def forward_items(
        self, encodings: Sequence[Encoding], *, pad_to_request_max: bool = False
    ) -> list[ForwardItem]:
        """One ForwardItem per encoding. `pad_to_request_max` is forced on by the model when
        the tokenizer pads on the left (extra padding would then shift positions)."""
        for index, encoding in enumerate(encodings):
            if len(encoding) == 0:
                raise InvalidInput(
                    f"instance {index} is empty after tokenization: nothing to run the model on",
                    param="instances",
                )
        longest = max((len(e) for e in encodings), default=0)
        pad = pad_to_request_max or self.pads_to_request_max
        return [ForwardItem(e, min_length=longest if pad else 0) for e in encodings]

    @abstractmethod
    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        """Raw per-item outputs (float32 numpy arrays, in request order) -> Prediction.
        `options`: this request's (see ProcessorOptions.with_request); None: the model's."""

    def input_specs(self) -> list[TensorSpec]:
        """The V2 inputs this processor takes, for model metadata: one BYTES input of texts."""
        return [INPUT_SPEC]

    @abstractmethod
    def output_specs(self) -> list[TensorSpec]:
        """The V2 outputs this processor produces, for model metadata."""


def too_long(index: int, tokens: int, limit: int, param: str) -> TooLarge:
    """The error for an input over the model's maximum length when auto_truncate is off.
    `param` is the request field: "instances" (KServe V1/V2), "input" (OpenAI embeddings) or
    "documents" (the texts an embedding model scores)."""
    noun = {"instances": "instance", "documents": "text"}.get(param, param)
    return TooLarge(
        f"{noun} {index} has {tokens} tokens, more than this model's maximum of {limit} "
        "(special tokens included); inputs are not truncated (the server's auto_truncate: "
        "false, or the request's truncate: false), so shorten it",
        param=param,
    )


# ---------------------------------------------------------------- KServe-exact helpers


def json_output_tensor(result: Sequence[Any], name: str = OUTPUT_NAME) -> OutputTensor:
    """The V2 form of the opt-in (non-KServe) outputs: BYTES [n], one JSON string per text."""
    return OutputTensor(name, "BYTES", [len(result)], [json.dumps(r) for r in result])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float32, as torch.softmax computes it."""
    values = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def rounded_4dp(value: float) -> float:
    """KServe's `float(f"{p:.4f}")`."""
    return float(f"{float(value):.4f}")


class UnavailableTensor(OutputTensor):
    """A V2 output that cannot be formed for this request although the V1 answer can (e.g.
    ragged fill-mask probabilities). Reading its data raises InvalidInput, so V2 answers 400
    where KServe answers 500, while V1 still returns the predictions."""

    def __init__(self, name: str, datatype: Datatype, message: str) -> None:
        # The dataclass __init__ would assign `data`; this class has no data to assign.
        self.name = name
        self.datatype = datatype
        self.shape = []
        self.message = message

    @property  # type: ignore[override]  # a field in the parent, read-only here
    def data(self) -> list[Any]:
        raise InvalidInput(self.message)

    def __repr__(self) -> str:
        return f"UnavailableTensor(name={self.name!r}, message={self.message!r})"


_NUMPY_KIND_TO_DATATYPE: dict[str, Datatype] = {"b": "BOOL", "O": "BYTES", "U": "BYTES"}
_NUMPY_DTYPE_TO_DATATYPE: dict[str, Datatype] = {
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}


def kserve_output_tensor(
    result: Sequence[Any], name: str = OUTPUT_NAME, ragged_message: str | None = None
) -> OutputTensor:
    """The V2 tensor KServe's `get_predict_response` builds from a V1 result list.

    A list of str is BYTES [n]; anything else goes through `np.array`: Python ints become
    INT64, floats FP64, and dicts an object array sent as BYTES holding `str(dict)`.
    """
    if result and isinstance(result[0], str):
        return OutputTensor(name, "BYTES", [len(result)], [str(r) for r in result])
    try:
        array = np.array(result)
    except ValueError:  # ragged nesting: numpy cannot make it rectangular
        message = ragged_message or "the outputs of this request are ragged"
        return UnavailableTensor(name, "BYTES", f"cannot form V2 tensor {name}: {message}")
    datatype = _NUMPY_KIND_TO_DATATYPE.get(array.dtype.kind) or _NUMPY_DTYPE_TO_DATATYPE.get(
        array.dtype.name, "BYTES"
    )
    if datatype == "BYTES":
        data: list[Any] = [str(value) for value in array.ravel()]
    else:
        data = array.ravel().tolist()
    return OutputTensor(name, datatype, list(array.shape), data)
