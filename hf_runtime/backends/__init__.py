"""Backends run models; this module holds the backend-neutral values and interfaces they offer.

Task processors (`hf_runtime.tasks`), the batcher and the served models the runtime composes
(`hf_runtime.runtime`) see a backend only through what is declared here: an `EncoderBackend`
for encoder tasks, a `GenerationEngine` for generative ones, and the `BackendParts` a backend's
loader returns. Never torch, transformers or vllm. Concrete backends live in subpackages
(`huggingface`, `vllm`), found through `hf_runtime.backends.registry` and imported only when a
model of that kind loads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from hf_runtime.types import GenerationDelta, GenerationRequest, TokenSpan

# sentence-transformers' pooling modes, the names `ForwardSpec.pooling` takes. Their formulas
# live in one place, `hf_runtime.backends.pooling`, which every backend that pools calls.
POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len", "weightedmean", "lasttoken")


# The sentence-transformers modules a checkpoint may list after its Pooling, described by what
# they compute (read by `hf_runtime.tasks`); `hf_runtime.backends.sentence_head` runs them in
# torch, where the pooled vectors are.


@dataclass(frozen=True)
class DenseModule:
    """`activation(x @ W.T + b)` (+ x, or + x @ R.T, with `residual`). `folder` holds the
    weights (model.safetensors or pytorch_model.bin: linear.weight, linear.bias,
    residual.weight); `activation` is the torch.nn class path sentence-transformers saves."""

    folder: str
    in_features: int
    out_features: int
    bias: bool
    activation: str
    residual: bool = False


@dataclass(frozen=True)
class LayerNormModule:
    """torch.nn.LayerNorm over the vector; weights (norm.weight, norm.bias) in `folder`."""

    folder: str
    dimension: int


@dataclass(frozen=True)
class NormalizeModule:
    """L2 normalisation (torch.nn.functional.normalize)."""


SentenceModule = DenseModule | LayerNormModule | NormalizeModule


@dataclass(frozen=True)
class LayerWeighting:
    """sentence-transformers' WeightedLayerPooling, before pooling: each token's state is the
    average of its states from layer `layer_start` on (0: the embeddings), weighted by the
    `layer_weights` in `folder`; the model has `num_hidden_layers` layers."""

    folder: str
    layer_start: int
    num_hidden_layers: int


# sentence-transformers' SpladePooling settings, the names `SparsePooling` takes.
SPARSE_STRATEGIES = ("max", "sum")
SPARSE_ACTIVATIONS = ("relu", "log1p_relu")


@dataclass(frozen=True)
class SparsePooling:
    """SPLADE over a masked-LM head's logits: per token `log1p(relu(logits))` (`log1p_relu`:
    log1p once more), then the max or sum over the text's real tokens -> one vocabulary-sized
    vector per text (sentence-transformers' SpladePooling; `hf_runtime.backends.pooling`)."""

    strategy: str = "max"
    activation: str = "relu"


@dataclass(frozen=True)
class Encoding:
    """One tokenized text, unpadded. `offsets` are character spans (fast tokenizers only);
    `text`, the text they index, is kept with them (token classification groups entities)."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None
    offsets: tuple[tuple[int, int], ...] | None = None
    text: str | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class ForwardItem:
    """One text to run through the encoder, and which part of its output is wanted.

    `min_length`: pad the text to at least this many positions, and return token-level outputs
    for all of them. KServe pads every text of a request to the request's longest and returns
    labels for the pad positions too; a pad position's output only depends on the real tokens
    it attends to, so extra padding from other requests in the same batch changes nothing.
    `positions`: return token-level outputs only at these (unpadded) positions (fill-mask).
    `prompt_length`: pooling leaves out this many leading tokens (a prompt that a
    sentence-transformers Pooling with `include_prompt: false` does not pool).
    `token_states`: return this text's per-token states ([tokens, H], the ones pooling
    reads) instead of its pooled vector (TEI's /embed_all), whatever the spec pools.
    """

    encoding: Encoding
    min_length: int = 0
    positions: tuple[int, ...] | None = None
    prompt_length: int = 0
    token_states: bool = False

    @property
    def padded_length(self) -> int:
        return max(len(self.encoding), self.min_length)


@dataclass(frozen=True)
class ForwardSpec:
    """What a model's forward pass must return, fixed per served model.

    `pooling` empty: the head's logits (sequence-level rows, or token-level rows for the
    positions a ForwardItem asks for). Non-empty: the last hidden states pooled per text with
    these modes, concatenated in order (sentence-transformers' convention), then passed
    through `sentence_modules` in order. `layer_weighting`: pool a weighted average of every
    layer's states instead of the last layer's. `sparse`: the head's vocabulary logits pooled
    per text (SPLADE), one vocabulary-sized vector each.
    """

    pooling: tuple[str, ...] = ()
    sentence_modules: tuple[SentenceModule, ...] = ()
    layer_weighting: LayerWeighting | None = None
    sparse: SparsePooling | None = None


@dataclass(frozen=True)
class TokenStrings:
    """Tokens as strings (convert_ids_to_tokens) and what grouping them needs: which are
    special (added by the tokenizer), which are the unknown token, whether the tokenizer marks
    word continuations (a continuing-subword prefix), and `join` (convert_tokens_to_string)."""

    tokens: tuple[str, ...]
    special: tuple[bool, ...]
    unknown: tuple[bool, ...]
    word_aware: bool
    join: Any  # Callable[[list[str]], str]


def token_spans(tokenizer: Any, text: str, add_special_tokens: bool) -> list[TokenSpan]:
    """`text`'s tokens with their character spans (a fast tokenizer's offsets; a slow one
    gives none). Call under the tokenizer's lock (every backend's and the generative model's)."""
    fast = bool(getattr(tokenizer, "is_fast", False))
    batch = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        truncation=False,
        return_offsets_mapping=fast,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids = batch["input_ids"]
    special = batch.get("special_tokens_mask") or [0] * len(ids)
    offsets = batch.get("offset_mapping") or [None] * len(ids)
    spans = []
    for token, is_special, offset in zip(ids, special, offsets, strict=True):
        start, stop = (None, None) if is_special or offset is None else map(int, offset)
        spans.append(TokenSpan(int(token), bool(is_special), start, stop))
    return spans


class EncoderBackend(Protocol):
    """A loaded encoder model plus its tokenizer. Every method but `aclose` blocks: call them
    off the loop."""

    @property
    def padding_side(self) -> str:
        """Where `forward` pads, "left" or "right" (left padding shifts real positions)."""

    @property
    def ready(self) -> bool:
        """False once the model cannot run (closed, or its engine died)."""

    @property
    def failure(self) -> str | None:
        """Why the engine died ("Its vLLM engine core died: ..."), None while it lives."""

    @property
    def max_length(self) -> int:
        """Texts are truncated to this many tokens (special tokens included)."""

    @property
    def hidden_size(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def num_labels(self) -> int: ...

    @property
    def mask_token(self) -> str | None: ...

    @property
    def mask_token_id(self) -> int | None: ...

    def tokenize(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        add_special_tokens: bool | None = None,
        truncation_side: str = "right",
        max_length: int | None = None,
    ) -> list[Encoding]:
        """Tokenize with the configured special-token and case settings; `truncate` cuts each
        text to the model's max length, or to `max_length` when given (false: full length,
        for `auto_truncate: false`), keeping its start ("right") or its end ("left"), special
        tokens kept either way; `add_special_tokens` overrides the configured setting (the
        /tokenize route)."""

    def tokenize_pairs(
        self,
        firsts: Sequence[str],
        seconds: Sequence[str],
        *,
        truncate: bool = True,
        truncation_side: str = "right",
    ) -> list[Encoding]:
        """Tokenize (query, document) pairs as one sequence each, with the tokenizer's
        `token_type_ids` when it has them; `truncate` cuts the document (its end, or with
        "left" its start), never the query, unless the query alone is too long (see
        `tokenizer_rules.tokenize_pairs`)."""

    def encode_ids(self, token_ids: Sequence[Sequence[int]]) -> list[Encoding]:
        """Wrap caller-provided token ids as encodings (no special tokens are added)."""

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...

    def token_spans(self, text: str, add_special_tokens: bool) -> list[TokenSpan]:
        """`text`'s tokens with their character spans (tokenizer_rules.token_spans)."""

    def token_strings(self, token_ids: Sequence[int]) -> TokenStrings:
        """The tokenizer's view of these tokens, for entity grouping (transformers'
        convert_ids_to_tokens, and what decides a subword)."""

    def prepare(self, spec: ForwardSpec) -> None:
        """Load what `spec` needs beyond the model (its sentence modules' weights), so that a
        bad checkpoint fails the load; ConfigError for what this backend cannot run."""

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[Any]:
        """Run one padded batch; one float32 numpy array per item, in order."""

    async def aclose(self) -> None:
        """Release the model (and stop its engine, if it has one)."""


class GenerationEngine(Protocol):
    """Continuous-batching generation for one model, or for one LoRA adapter of it.

    The engine owns scheduling, admission (429 beyond capacity) and request limits; the served
    model around it owns tokenizing, chat templates and detokenizing. An adapter's engine is a
    view of its base model's engine: it reports no stats and its `aclose` stops nothing, so the
    shared engine is counted and closed once, by the base model.
    """

    @property
    def max_model_len(self) -> int:
        """Prompt plus generated tokens fit in this many positions."""

    @property
    def is_encoder_decoder(self) -> bool: ...

    @property
    def input_vocab_size(self) -> int:
        """Token ids a prompt (or a detokenize call) may hold: [0, input_vocab_size)."""

    @property
    def ready(self) -> bool:
        """False once the engine cannot generate (closing, or it died)."""

    @property
    def failure(self) -> str | None:
        """Why the engine died ("Its inference thread died: ..."), None while it lives."""

    def stats(self) -> Mapping[str, int]:
        """Counters and gauges for /metrics (running, waiting, rejected_requests, ...)."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Stream one sequence's deltas. Closing the iterator (or cancelling the task that
        iterates it) aborts the sequence."""

    async def aclose(self) -> None:
        """Stop generating; sequences still in flight end with ModelNotReady."""


# ---------------------------------------------------------------- what a backend's loader returns


@dataclass(frozen=True)
class EncoderParts:
    """A loaded encoder-task model: the runtime adds the task processor and the batcher."""

    platform: str  # the backend's name, which metadata and metrics report
    encoder: EncoderBackend


@runtime_checkable
class LoRAEngine(Protocol):
    """A GenerationEngine that loads LoRA adapters while serving (vLLM with LoRA enabled)."""

    @property
    def lora_enabled(self) -> bool:
        """Whether the engine was started able to take adapters."""

    async def add_adapter(self, name: str, path: str) -> GenerationEngine:
        """Load the adapter at `path`; returns the view of this engine that runs it. Raises
        InvalidInput for a path that holds no loadable adapter, Unsupported when the engine
        was started without LoRA."""

    async def remove_adapter(self, adapter: GenerationEngine) -> None:
        """Drop an adapter `add_adapter` returned (or a configured one) from the engine."""


class LoRAAdapter(NamedTuple):
    """A LoRA adapter served under its own model name on its base model's engine."""

    name: str
    engine: GenerationEngine


@dataclass(frozen=True)
class GenerationParts:
    """A loaded generative model: the runtime adds tokenizing, chat templates, detokenizing.

    `tokenizer` is a transformers tokenizer (encode, decode, apply_chat_template).
    `chat_template` is the configured template file's text (None: the tokenizer's own).
    `sampling_defaults`: the checkpoint's generation_config.json sampling values, checked, with
    the configuration's (generation.sampling_defaults, default_max_tokens) laid over them (see
    `hf_runtime.backends.generation_defaults`); empty when none apply.
    """

    platform: str
    engine: GenerationEngine
    tokenizer: Any
    chat_template: str | None = None
    adapters: tuple[LoRAAdapter, ...] = ()
    sampling_defaults: Mapping[str, float | int] = field(default_factory=dict)


BackendParts = EncoderParts | GenerationParts
