"""The capability interfaces protocols depend on, and the served model that offers them.

A served model is registered with the capabilities it really has, decided once when it loads:
  - `Predictor`: KServe V1/V2 inference on encoder tasks (texts in, task outputs out);
  - `Embedder`: embedding vectors (text_embedding; sparse_embedding's written out densely);
  - `SparseEmbedder`: sparse (SPLADE) vectors, their non-zero entries (sparse_embedding);
  - `TextGenerator`: generation (text_generation, text2text_generation);
  - `Scorer`: relevance of (query, document) pairs (rerank: a cross-encoder's score;
    text_embedding: the cosine similarity of the two texts' embeddings);
  - `TextTokenizer`: the model's own tokenizer, text <-> token ids (every generative and
    encoder model: the /tokenize and /detokenize routes).
A protocol asks for the capability it needs with `require_capability`, the one place that
decides "this model cannot do that" (400), so no model stubs a method it cannot serve; it
checks readiness with `require_ready`, the one place that turns a model's `ModelStatus` into
"still loading" (ModelNotReady) or "failed, and why" (ModelLoadFailed), both 503.
Observability (`stats`) and lifecycle (`aclose`) are declared here too.

Protocol routers (`hf_runtime.protocols.*`) import this module, `types` and `errors` only:
never a backend, torch, transformers or vllm. Every method that can take more than a few
microseconds is async and does its work off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from hf_runtime.errors import HFRuntimeError, ModelLoadFailed, ModelNotReady, Unsupported
from hf_runtime.types import (
    Classification,
    EmbeddingResult,
    GenerationDelta,
    GenerationRequest,
    ModelMetadata,
    ModelState,
    ModelStatus,
    OutputOptions,
    PooledResult,
    PoolingOptions,
    PoolingTask,
    Prediction,
    RepositoryEntry,
    ScoreResult,
    SparseEmbeddingResult,
    TextPair,
    TokenEmbeddings,
    TokenSpan,
    Truncation,
)


class Predictor(Protocol):
    """KServe V1/V2 inference on an encoder task."""

    async def predict(
        self, instances: Sequence[str], options: OutputOptions | None = None
    ) -> Prediction:
        """Raises InvalidInput for bad instances, Overloaded when the queue is full.
        `options`: one request's validated output options, overriding the model's config for
        this call only (None or empty: the configured, by default KServe-exact, outputs)."""


class Embedder(Protocol):
    """Embeddings (text_embedding)."""

    async def embed(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        """Token-id inputs allowed. `dimensions` truncates each vector to its first N values
        and renormalises (Matryoshka). `prompt_name`: one of the model's prompts, prepended to
        every text (None: its default prompt); an unknown name is InvalidInput. `truncation`:
        how over-long texts are cut (None: the model's rule). `normalize`: L2-normalise the
        vectors or not (None: the model's `normalize_embeddings`)."""

    async def embed_tokens(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> TokenEmbeddings:
        """Every token's last hidden state, unpooled (TEI's /embed_all): one [tokens, hidden]
        list per input, special tokens and the prompt included."""


class SparseEmbedder(Protocol):
    """Sparse embeddings (sparse_embedding: SPLADE), one vocabulary-sized vector per input
    given by its non-zero entries."""

    async def embed_sparse(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> SparseEmbeddingResult:
        """Token-id inputs allowed (embedded as given). `prompt_name` and `truncation` as
        `Embedder.embed`'s."""


class Scorer(Protocol):
    """Relevance scores of text pairs (rerank and score routes, KServe V1/V2 pair inputs)."""

    @property
    def max_pairs(self) -> int:
        """The most pairs one request may hold (the model's `batching.max_queue_size`)."""

    async def score(
        self,
        text_1: Sequence[str],
        text_2: Sequence[str],
        *,
        truncation: Truncation | None = None,
    ) -> ScoreResult:
        """One score per text of `text_2`: against `text_1[0]` when `text_1` holds one text
        (1:N), else against the text at the same index (N:N, equal lengths). Raises
        InvalidInput for bad texts, Overloaded when the queue is full. `truncation`: how
        over-long texts (a pair's document) are cut (None: the model's rule)."""


class Classifier(Protocol):
    """Every class's score for texts and text pairs (TEI's /predict and /rerank)."""

    @property
    def max_inputs(self) -> int:
        """The most texts or pairs one request may hold (`batching.max_queue_size`)."""

    async def classify(
        self,
        inputs: Sequence[str | TextPair],
        *,
        raw_scores: bool = False,
        truncation: Truncation | None = None,
    ) -> Classification:
        """Scores as TEI gives them: the logits with `raw_scores`, else sigmoid for a
        one-label head and softmax otherwise. A pair is read as one sequence (a
        cross-encoder's input). Raises InvalidInput for bad inputs, Overloaded when the queue
        is full."""


class TextTokenizer(Protocol):
    """The model's tokenizer as vLLM's /tokenize and /detokenize expose it: exactly the ids
    the model would be given, special tokens as asked, nothing truncated."""

    @property
    def max_model_len(self) -> int:
        """The most tokens the model takes (prompt plus completion, for a generator)."""

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    async def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Special tokens kept unless skipped. Raises InvalidInput for an id outside the
        vocabulary."""

    async def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        """The tokenizer's own string per id (`convert_ids_to_tokens`, e.g. "Ġhello")."""

    async def token_spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        """`text`'s tokens with the characters each covers (TEI's /tokenize), untruncated."""


class Pooler(Protocol):
    """vLLM's pooling API (/pooling, /classify): one pooled output per input, for the model's
    one pooling task."""

    @property
    def pooling_task(self) -> PoolingTask:
        """vLLM's name for it: "embed" (an embedding per input) or "classify" (class
        scores per input)."""

    @property
    def max_input_tokens(self) -> int:
        """The most tokens one input may keep (`truncate_prompt_tokens` at most this)."""

    async def pool(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        options: PoolingOptions | None = None,
    ) -> PooledResult:
        """Texts or token-id lists. Raises InvalidInput for bad inputs or options, TooLarge
        for an over-long input the model does not truncate, Overloaded when the queue is
        full."""


class TextGenerator(Protocol):
    """Generation as the OpenAI layer sees it; implemented over the huggingface and vllm engines.

    The engine owns scheduling (continuous batching). Each `generate` call is ONE sequence;
    the protocol layer fans out `n > 1` into n calls (with derived seeds).
    """

    @property
    def max_model_len(self) -> int: ...

    @property
    def is_encoder_decoder(self) -> bool: ...

    @property
    def sampling_defaults(self) -> Mapping[str, float | int]:
        """The model's sampling defaults, named as SamplingParams fields: temperature, top_p,
        top_k, min_p, presence_penalty, frequency_penalty, repetition_penalty, max_tokens.
        Lowest to highest: generation.default_max_tokens (max_tokens only), the model's
        generation_config.json (vLLM's `--generation-config auto`), the configuration's
        generation.sampling_defaults (vLLM's `--override-generation-config`). A request field
        left unset takes this value (else OpenAI's default); one the request sets keeps its
        own. `max_tokens` is applied by `generate` itself, capped by the room the prompt
        leaves. Empty when none of them sets anything."""

    @property
    def tool_call_parser(self) -> str | None:
        """The parser that reads this model's own tool-call syntax for `tool_choice: "auto"`
        (`generation.tool_call_parser`: hermes, llama3_json, mistral, pythonic), or None."""

    @property
    def reasoning_parser(self) -> str | None:
        """How this model marks its thinking (`generation.reasoning_parser`: deepseek_r1,
        qwen3; hf_runtime.reasoning splits it out of the text), or None."""

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    async def detokenize(self, token_ids: Sequence[int]) -> str: ...

    async def render_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> list[int]:
        """Apply the chat template (request's, if allowed; config file's; tokenizer's) -> ids.

        Raises InvalidInput (param "messages" / "chat_template") when no template exists or the
        template fails on these messages.
        """

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Stream deltas for one sequence. Closing the iterator (or cancelling the task that
        iterates it) aborts the sequence within one decoding step."""


C = TypeVar("C")

# What each capability is called in messages.
CAPABILITY_LABELS: dict[type, str] = {
    Predictor: "KServe V1/V2 inference",
    Embedder: "embeddings",
    SparseEmbedder: "sparse embeddings",
    TextGenerator: "text generation",
    Scorer: "rerank / score (text pairs)",
    Classifier: "classification scores (TEI's /predict)",
    TextTokenizer: "tokenize / detokenize",
    Pooler: "pooling / classify",
}


@runtime_checkable
class ServedModel(Protocol):
    """A model as every protocol sees it."""

    @property
    def name(self) -> str: ...

    @property
    def task(self) -> str:
        """A `hf_runtime.tasks.registry.Task` value."""

    @property
    def backend(self) -> str:
        """The backend that runs it ("huggingface", "vllm"); "" while loading."""

    @property
    def ready(self) -> bool:
        """`status().ready`, for the many callers that need only that."""

    def status(self) -> ModelStatus:
        """LOADING / READY / FAILED (with the reason) / UNAVAILABLE."""

    def metadata(self) -> ModelMetadata:
        """Raises ModelNotReady while loading."""

    def capability(self, kind: type[C]) -> C | None:
        """The capability `kind` (Predictor, Embedder, Scorer, TextGenerator, TextTokenizer,
        Pooler) or None if the model does not have it. Raises ModelNotReady while loading."""

    def stats(self) -> Mapping[str, int]:
        """Counters and gauges for /metrics ({} when there are none)."""

    async def aclose(self) -> None:
        """Stop serving and release the model's resources."""


def require_capability(
    model: ServedModel, kind: type[C], *, wanted: str | None = None, alternatives: str = ""
) -> C:
    """The one place that decides whether `model` can serve a request needing `kind`.

    Not ready: `require_ready`'s 503. Lacking it: Unsupported (400, param "model") naming what
    was `wanted` (default: the capability's label) and, when the protocol knows them, the
    routes that would serve this model (`alternatives`).
    """
    require_ready(model)
    found = model.capability(kind)
    if found is None:
        label = wanted or CAPABILITY_LABELS.get(kind, kind.__name__)
        hint = f"; use {alternatives}" if alternatives else ""
        raise Unsupported(
            f"Model {model.name} ({model.task}) does not support {label}{hint}", param="model"
        )
    return found


def capable_models(registry: ModelRegistry, capable: Callable[[ServedModel], bool]) -> list[str]:
    """The served models' names that are `capable` of a request naming no model, for the
    protocols that pick the one such model (TEI's routes, vLLM's /pooling and /classify). A
    model still loading (or gone) is not a candidate."""
    found = []
    for name in registry.names():
        try:
            if capable(registry.get(name)):
                found.append(name)
        except HFRuntimeError:
            continue
    return found


def require_ready(model: ServedModel) -> None:
    """The one readiness check: FAILED raises ModelLoadFailed (its reason in the message);
    LOADING or UNAVAILABLE raise ModelNotReady (an UNAVAILABLE one saying why: not loaded,
    unloading); READY passes."""
    if model.ready:
        return
    status = model.status()
    if status.state is ModelState.FAILED:
        raise ModelLoadFailed(model.name, status.reason)
    error = ModelNotReady(model.name)
    if status.state is ModelState.UNAVAILABLE and status.reason:
        error.message = f"{error.message} It is {status.reason}."
        error.args = (error.message,)
    raise error


class ModelRegistry(Protocol):
    """Name -> ServedModel lookup shared by all protocols."""

    def get(self, name: str) -> ServedModel:
        """Raises ModelNotFound."""

    def names(self) -> list[str]: ...

    @property
    def ready(self) -> bool:
        """True once every model has loaded (and while the server is not draining)."""

    @property
    def live(self) -> bool:
        """False once a loaded model's engine has died: the process should be restarted."""


@runtime_checkable
class ModelRepository(Protocol):
    """Loading and unloading models while serving (the V2 model repository extension)."""

    async def index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        """Every configured model and every model repository folder, with its state."""

    async def load(self, name: str) -> None:
        """Load `name` (a loaded model stays as it is). Raises ModelNotFound, or InvalidInput
        naming why the load failed."""

    async def unload(self, name: str) -> None:
        """Stop serving `name` once its requests in flight ended (bounded wait), then free
        it (an unloaded model stays as it is). Raises ModelNotFound."""


@runtime_checkable
class AdapterManager(Protocol):
    """LoRA adapters loaded and unloaded while serving (vLLM's runtime LoRA routes)."""

    async def load_adapter(self, name: str, path: str | None, base_model: str | None) -> None:
        """Serve the adapter at `path` (None: the model repository folder `name`) under
        `name` on `base_model` (None: the one model that takes adapters). Raises InvalidInput
        for a bad path or a base that cannot take adapters."""

    async def unload_adapter(self, name: str) -> None:
        """Stop serving the adapter `name`. Raises ModelNotFound for an unknown adapter."""
