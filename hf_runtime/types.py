"""Protocol-neutral values that cross the model interface (no torch, no wire formats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

# Open Inference Protocol V2 datatypes.
Datatype = Literal[
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    """Declared input or output of a model (V2 model metadata). -1 marks a variable dim."""

    name: str
    datatype: Datatype
    shape: list[int]


@dataclass(frozen=True)
class ModelFacts:
    """Where a model came from and the limits it runs under (TEI's /info reports them)."""

    source: str  # the Hub id, or the folder it was loaded from
    revision: str | None
    dtype: str  # as configured ("auto": the checkpoint's)
    max_batch_tokens: int
    max_queue_size: int
    auto_truncate: bool
    pooling: tuple[str, ...] = ()  # an embedding model's pooling modes
    labels: dict[int, str] = field(default_factory=dict)  # a classifier's id2label


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    task: str
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    versions: list[str] | None = None
    facts: ModelFacts | None = None  # None: not known (a test's model)


class ModelState(str, Enum):
    """Where a served model stands: the states of the V2 model repository extension."""

    LOADING = "LOADING"  # being loaded: requests get 503 "not ready"
    READY = "READY"
    FAILED = "FAILED"  # its load failed, or its engine died: 503 saying why
    UNAVAILABLE = "UNAVAILABLE"  # not loaded (never asked, or unloaded / closed)


@dataclass(frozen=True)
class ModelStatus:
    """A model's state and, when it is not READY, why (the error of a failed load)."""

    state: ModelState
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY


@dataclass
class OutputTensor:
    """One named output, already in KServe's V2 form: flattened row-major data."""

    name: str
    datatype: Datatype
    shape: list[int]
    data: list[Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "parameters": None,
            "data": self.data,
        }


@dataclass
class Prediction:
    """Result of an encoder predict call.

    `predictions` is what KServe V1 returns under "predictions" (one entry per instance).
    `tensors` is what KServe V2 returns under "outputs" (tensors[0] is "output-0"); the V1
    response carries tensors[1:] under "outputs" (KServe does this for offset_mapping), unless
    `v1_outputs` is off: where every tensor is a part of each prediction (a sparse vector's
    indices and values), V1 says it once, in "predictions".
    """

    predictions: list[Any]
    tensors: list[OutputTensor]
    v1_outputs: bool = True


@dataclass(frozen=True)
class Truncation:
    """How one request's over-long texts are cut (TEI's `truncate` and
    `truncation_direction`). `enabled` None: the model's `auto_truncate`; false: an over-long
    text is refused (TooLarge). `side` "left" keeps the end of the text, "right" its start;
    the tokenizer's special tokens stay either way (transformers' `truncation_side`)."""

    enabled: bool | None = None
    side: Literal["left", "right"] = "right"


@dataclass
class EmbeddingResult:
    embeddings: list[list[float]]
    prompt_tokens: int  # real tokens (special tokens counted, padding not)


@dataclass
class TokenEmbeddings:
    """Per input, every token's vector (rows of the last hidden state, unpooled)."""

    embeddings: list[list[list[float]]]
    prompt_tokens: int


@dataclass(frozen=True)
class SparseVector:
    """A sparse embedding's non-zero entries, by ascending index (a vocabulary token id)."""

    indices: list[int]
    values: list[float]


@dataclass
class SparseEmbeddingResult:
    """One SparseVector per input; `dimension` is the dense size (the vocabulary's)."""

    vectors: list[SparseVector]
    dimension: int
    prompt_tokens: int  # real tokens (special tokens counted, padding not)


@dataclass(frozen=True)
class TokenSpan:
    """One token of a tokenized text: its id, whether the tokenizer added it (special), and
    the characters of the text it covers (None for a special token or without offsets)."""

    id: int
    special: bool
    start: int | None = None
    stop: int | None = None


@dataclass
class Classification:
    """Per text (or text pair), every class's score in class order; `labels` names them."""

    scores: list[list[float]]
    labels: list[str]
    prompt_tokens: int


# The V2 inputs of a pair request (and a rerank model's declared inputs), in pair order.
PAIR_INPUTS = ("text", "text_pair")


@dataclass(frozen=True)
class TextPair:
    """One (query, document) pair to score: transformers' pipeline names for a pair input."""

    text: str
    text_pair: str


@dataclass
class ScoreResult:
    """One relevance score per pair, in request order, and the tokens the model read."""

    scores: list[float]
    prompt_tokens: int  # real tokens (special tokens counted, padding not)


# vLLM's pooling tasks a model's pooled output can be (its /pooling `task`, its /classify).
PoolingTask = Literal["embed", "classify"]


@dataclass(frozen=True)
class PoolingOptions:
    """One /pooling or /classify request's settings, as vLLM's pooling requests name them.

    `activation` (vLLM's `use_activation`): the pooler's own activation (a classifier's
    softmax or sigmoid, an embedding's normalisation); false gives the raw output.
    `truncate_tokens` (`truncate_prompt_tokens`): keep at most this many tokens, -1 meaning
    the model's maximum; None applies the model's own rule (auto_truncate).
    `truncation_side` (None: the tokenizer's; else "left" keeps the end, "right" the start)
    cuts the token ids themselves, special tokens included, as vLLM does.
    `dimensions` and `prompt_name` (embedding models only; /v1/embeddings' own fields, for its
    `truncate_prompt_tokens`, which it serves through the pooler): as `Embedder.embed`'s.
    """

    activation: bool = True
    truncate_tokens: int | None = None
    truncation_side: Literal["left", "right"] | None = None
    add_special_tokens: bool = True
    dimensions: int | None = None
    prompt_name: str | None = None


@dataclass
class PooledResult:
    """One pooled output per input, in request order: an embedding, or a classifier's class
    scores (`labels`: the best class's name per input, classifiers only)."""

    outputs: list[list[float]]
    prompt_tokens: int  # real tokens (special tokens counted, padding not)
    labels: list[str | None] | None = None


# ---------------------------------------------------------------- generation


# vLLM's `structured_outputs` kinds: a JSON Schema, any JSON object, a regular expression,
# an EBNF grammar (xgrammar's dialect), one of a list of strings, an xgrammar structural tag.
StructuredKind = Literal[
    "json_schema", "json_object", "regex", "grammar", "choice", "structural_tag"
]


@dataclass(frozen=True)
class StructuredOutput:
    """A grammar every generated token must follow (constrained decoding).

    Built by the protocol layer from OpenAI's `response_format`, vLLM's `structured_outputs`
    or a forced tool call (`tool_choice` naming a function, or "required"); each backend
    compiles it with its own grammar engine. `schema` is the constraint's text, the
    compiled-grammar cache key: the JSON Schema as compact JSON in the client's key order (the
    output follows the declared property order), the regex, the EBNF grammar, the choices as a
    JSON array, the structural tag as JSON; None for "json_object" (any JSON object). `param`
    names the request field that errors about it point at.
    """

    kind: StructuredKind
    schema: str | None = None
    param: str = "response_format"


@dataclass
class SamplingParams:
    """Per-request decoding parameters, OpenAI semantics. Validated by the protocol layer."""

    max_tokens: int | None = None  # None: the rest of the context
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables
    min_p: float = 0.0
    seed: int | None = None  # per request, never process-global
    presence_penalty: float = 0.0  # OpenAI meaning (additive, once per seen token)
    frequency_penalty: float = 0.0  # OpenAI meaning (additive, per occurrence)
    repetition_penalty: float = 1.0  # HF/vLLM multiplicative penalty
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> bias
    stop: list[str] = field(default_factory=list)  # matched on text, removed from output
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    min_tokens: int = 0
    logprobs: int | None = None  # None: no logprobs; k>=0: sampled token + top-k alternatives
    structured: StructuredOutput | None = None  # constrained decoding; None: free text


@dataclass
class GenerationRequest:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams


@dataclass
class TokenLogprob:
    token_id: int
    token: str  # the token's text piece
    logprob: float
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (id, text, logprob)


FinishReason = Literal["stop", "length", "abort"]


@dataclass
class GenerationDelta:
    """What one sequence produced since the last delta.

    `text` is new, stop-trimmed text (may be "" when bytes of a character are still pending).
    `finish_reason` is set on the last delta only; `stop_reason` says which stop string or
    token id ended it (None on EOS/length).
    """

    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    stop_reason: str | int | None = None
    prompt_tokens: int = 0  # filled on the first delta


OUTPUT_OPTION_KEYS = ("return_labels", "top_k", "aggregation_strategy", "prompt_name")
# transformers' TokenClassificationPipeline strategies (token classification entity grouping).
AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


@dataclass(frozen=True)
class OutputOptions:
    """Opt-in encoder outputs asked for by one request; None keeps the model's configured value.

    Frozen and per call: a request's overrides never touch a shared processor or model."""

    return_labels: bool | None = None
    top_k: int | None = None
    aggregation_strategy: str | None = None
    prompt_name: str | None = None  # text_embedding: one of the checkpoint's prompts

    @property
    def empty(self) -> bool:
        return self == OutputOptions()


def parse_output_options(values: dict[str, Any], where: str) -> OutputOptions:
    """Validated OutputOptions from a request's `parameters` (only OUTPUT_OPTION_KEYS taken).
    Raises ValueError naming `where`.key; the protocols turn it into their 400."""
    found: dict[str, Any] = {}
    if "return_labels" in values:
        value = values["return_labels"]
        if not isinstance(value, bool):
            raise ValueError(f"{where}.return_labels must be true or false, got {value!r}")
        found["return_labels"] = value
    if "top_k" in values:
        value = values["top_k"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}.top_k must be an integer of at least 1, got {value!r}")
        found["top_k"] = value
    if "aggregation_strategy" in values:
        value = values["aggregation_strategy"]
        if value not in AGGREGATION_STRATEGIES:
            raise ValueError(
                f"{where}.aggregation_strategy must be one of "
                f"{', '.join(AGGREGATION_STRATEGIES)}, got {value!r}"
            )
        found["aggregation_strategy"] = value
    if "prompt_name" in values:
        value = values["prompt_name"]
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}.prompt_name must be a prompt's name, got {value!r}")
        found["prompt_name"] = value
    return OutputOptions(**found)


@dataclass(frozen=True)
class RepositoryEntry:
    """One model of the repository index: a configured model or a model repository folder."""

    name: str
    state: ModelState
    reason: str = ""  # why it is not READY ("" when it is)
    version: str = ""  # hf-runtime's models are unversioned
