"""Deterministic fakes of `hf_runtime.model`'s protocols, for protocol-layer tests.

`FakeServedModel` answers predict/embed with outputs computed from the input text alone, so
tests can assert exact values. `FakeTextGenerator` is a byte-level "model": token ids 0-255 are
UTF-8 bytes, 256 is BOS and 257 EOS; it replies with a fixed text (rotated by the seed when
sampling), honouring max_tokens, stop strings, stop token ids, EOS, min_tokens and logprobs.
"""

from __future__ import annotations

import asyncio
import codecs
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

from hf_runtime.errors import (
    HFRuntimeError,
    InvalidInput,
    ModelNotFound,
)
from hf_runtime.model import (
    Classifier,
    Embedder,
    Pooler,
    Predictor,
    Scorer,
    SparseEmbedder,
    TextGenerator,
    TextTokenizer,
    require_ready,
)
from hf_runtime.observability.context import note_model
from hf_runtime.types import (
    Classification,
    EmbeddingResult,
    GenerationDelta,
    GenerationRequest,
    ModelMetadata,
    ModelState,
    ModelStatus,
    OutputTensor,
    Prediction,
    RepositoryEntry,
    TensorSpec,
    TextPair,
    TokenEmbeddings,
    TokenLogprob,
    TokenSpan,
    Truncation,
)
from tests.fake_pooler import FakePooler
from tests.fake_scorer import FakeScorer, fake_relevance
from tests.fake_sparse import SPARSE_OUTPUTS, FakeSparseEmbedder

BOS_ID = 256
EOS_ID = 257
CLS_ID, SEP_ID = 256, 257  # the encoder tokenizer's specials
EMBEDDING_DIM = 8
# The fake embedding model's prompts (a sentence-transformers checkpoint's `prompts`).
FAKE_PROMPTS = {"query": "query: ", "passage": "passage: "}
GENERATIVE_TASKS = ("text_generation", "text2text_generation")
SCORING_TASKS = ("text_embedding", "rerank")  # the tasks with a Scorer


def fake_label(text: str) -> int:
    """The fake classifier's label: 1 when the text has an even length, else 0."""
    return int(len(text) % 2 == 0)


def fake_probabilities(text: str) -> dict[int, float]:
    positive = round(min(len(text), 99) / 100, 4)
    return {0: round(1 - positive, 4), 1: positive}


def fake_embedding(values: Sequence[int], dimensions: int | None = None) -> list[float]:
    """A unit vector derived from the values (character codes or token ids)."""
    raw = [float(sum((v + 1) * (i + 1) for v in values) % 97 + 1) for i in range(EMBEDDING_DIM)]
    raw = raw[:dimensions] if dimensions else raw
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


class FakeServedModel:
    """A ServedModel. `task` picks the behaviour; flip `.ready` to simulate loading.

    - sequence_classification: predictions are `fake_label(text)` (INT64 output-0), or with
      `probabilities=True` `fake_probabilities(text)` dicts with int keys (BYTES output-0
      holding `str(dict)`, as KServe does);
    - token_classification: per text `[[len(word) % 3 for word in text.split()]]`, padded with 0
      to the longest text, plus an `offset_mapping` tensor when `offsets=True`;
    - text_embedding: `fake_embedding` vectors (FP64 output-0); `embed()` works, and scoring
      (tests/fake_scorer.py: cosine of those vectors);
    - sparse_embedding: tests/fake_sparse.py's vectors (V1 indices/values objects, V2 INT64
      `indices` and FP32 `values`), embed_sparse() and embed() (written out densely);
    - rerank: a fake cross-encoder, scoring only (`fake_relevance`), inputs text, text_pair;
    - text_generation / text2text_generation: only the TextGenerator capability;
    - the encoder tasks but token_classification pool (tests/fake_pooler.py: /pooling, /classify).
    `fail_with`, when set, is raised by predict and embed (to test error mapping).
    """

    def __init__(
        self,
        name: str = "fake",
        task: str = "sequence_classification",
        *,
        ready: bool = True,
        probabilities: bool = False,
        offsets: bool = False,
        versions: list[str] | None = None,
        generator: TextGenerator | None = None,
        fail_with: HFRuntimeError | None = None,
    ) -> None:
        self._name = name
        self._task = task
        self.ready = ready
        self.failed_reason: str | None = None  # set (with ready=False) to simulate a failed load
        self.probabilities = probabilities
        self.offsets = offsets
        self.versions = versions
        self.fail_with = fail_with
        self.predict_calls: list[list[str]] = []
        self.predict_options: list[Any] = []  # the options each predict call was given
        self.embed_options: list[Any] = []  # (truncation, normalize) of each embed call
        self.classify_calls: list[Any] = []  # (inputs, raw_scores, truncation) per call
        if task in GENERATIVE_TASKS and generator is None:
            generator = FakeTextGenerator(is_encoder_decoder=task == "text2text_generation")
        self._generator = generator
        embed_text = lambda text: fake_embedding([ord(c) for c in text])  # noqa: E731
        self.scorer = (
            FakeScorer(self, embed_text, cross=task == "rerank") if task in SCORING_TASKS else None
        )
        pooling = task in (*SCORING_TASKS, "sequence_classification")
        self.pooler = FakePooler(self, task) if pooling else None
        sparse = task == "sparse_embedding"
        self.sparse = FakeSparseEmbedder(self, FAKE_PROMPTS) if sparse else None
        # Every model tokenizes: a generator with its own vocabulary, an encoder with CLS/SEP.
        self.tokenizer: Any = generator if generator is not None else FakeEncoderTokenizer()

    @property
    def name(self) -> str:
        return self._name

    @property
    def task(self) -> str:
        return self._task

    @property
    def backend(self) -> str:
        return "fake"

    def status(self) -> ModelStatus:
        """READY, LOADING while `.ready` is False, or FAILED with `failed_reason` when set."""
        if self.failed_reason is not None:
            return ModelStatus(ModelState.FAILED, self.failed_reason)
        return ModelStatus(ModelState.READY if self.ready else ModelState.LOADING)

    def capability(self, kind: type[Any]) -> Any:
        self._check_ready()
        if kind is TextGenerator:
            return self._generator
        if kind is Embedder:
            return self if self._task == "text_embedding" else self.sparse
        if kind is SparseEmbedder:
            return self.sparse
        if kind is Scorer:
            return self.scorer
        if kind is TextTokenizer:
            return self.tokenizer
        if kind is Predictor:
            return self if self._task not in (*GENERATIVE_TASKS, "rerank") else None
        if kind is Pooler:
            return self.pooler
        if kind is Classifier:
            return self if self._task in ("sequence_classification", "rerank") else None
        return None

    # The Classifier: two classes scored as fake_probabilities (a pair: text + " " + pair);
    # a rerank model's one class is fake_relevance. Raw scores are the scores' logits.
    max_inputs = 64

    async def classify(
        self,
        inputs: Sequence[str | TextPair],
        *,
        raw_scores: bool = False,
        truncation: Truncation | None = None,
    ) -> Classification:
        self._check_ready()
        if self.fail_with is not None:
            raise self.fail_with
        self.classify_calls.append((list(inputs), raw_scores, truncation))
        rows = []
        for item in inputs:
            if self._task == "rerank":
                query, document = (
                    (item, "") if isinstance(item, str) else (item.text, item.text_pair)
                )
                row = [fake_relevance(query, document)]
            else:
                text = item if isinstance(item, str) else f"{item.text} {item.text_pair}"
                row = list(fake_probabilities(text).values())
            row = [min(max(p, 1e-4), 1 - 1e-4) for p in row]
            rows.append([math.log(p / (1 - p)) if raw_scores else p for p in row])
        labels = ["LABEL_0"] if self._task == "rerank" else ["NEGATIVE", "POSITIVE"]
        return Classification(rows, labels, 3 * len(rows))

    def stats(self) -> dict[str, int]:
        return {}

    async def aclose(self) -> None:
        self.ready = False

    def _check_ready(self) -> None:
        require_ready(self)

    def metadata(self) -> ModelMetadata:
        self._check_ready()
        if self._task in GENERATIVE_TASKS:
            inputs = [TensorSpec("text_input", "BYTES", [-1])]
            outputs = [TensorSpec("text_output", "BYTES", [-1])]
        elif self._task == "rerank":
            inputs = [TensorSpec("text", "BYTES", [-1]), TensorSpec("text_pair", "BYTES", [-1])]
            outputs = [TensorSpec("output-0", "FP64", [-1])]
        else:
            inputs = [TensorSpec("input-0", "BYTES", [-1])]
            outputs = [TensorSpec("output-0", self._output_datatype(), self._output_shape())]
            if self._task == "token_classification" and self.offsets:
                outputs.append(TensorSpec("offset_mapping", "INT64", [-1, -1, 2]))
            if self.sparse is not None:
                outputs = list(SPARSE_OUTPUTS)
        return ModelMetadata(
            name=self._name,
            task=self._task,
            platform="hf-runtime-fake",
            inputs=inputs,
            outputs=outputs,
            versions=self.versions,
        )

    def _output_datatype(self) -> str:
        if self._task == "text_embedding":
            return "FP64"
        if self._task == "sequence_classification" and self.probabilities:
            return "BYTES"
        return "INT64"

    def _output_shape(self) -> list[int]:
        return {"text_embedding": [-1, EMBEDDING_DIM], "token_classification": [-1, 1, -1]}.get(
            self._task, [-1]
        )

    async def predict(self, instances: Sequence[str], options: Any = None) -> Prediction:
        self._check_ready()
        self.predict_options.append(options)
        if self.fail_with is not None:
            raise self.fail_with
        texts = list(instances)
        self.predict_calls.append(texts)
        n = len(texts)
        if self.sparse is not None:
            return await self.sparse.predict(texts)
        if self._task == "text_embedding":
            vectors = [fake_embedding([ord(c) for c in t]) for t in texts]
            flat = [x for v in vectors for x in v]
            return Prediction(vectors, [OutputTensor("output-0", "FP64", [n, EMBEDDING_DIM], flat)])
        if self._task == "token_classification":
            return self._token_prediction(texts)
        if self.probabilities:
            probs = [fake_probabilities(t) for t in texts]
            return Prediction(
                probs, [OutputTensor("output-0", "BYTES", [n], [str(p) for p in probs])]
            )
        labels = [fake_label(t) for t in texts]
        return Prediction(labels, [OutputTensor("output-0", "INT64", [n], labels)])

    def _token_prediction(self, texts: list[str]) -> Prediction:
        words = [t.split() for t in texts]
        width = max((len(w) for w in words), default=0)
        rows = [[len(word) % 3 for word in w] + [0] * (width - len(w)) for w in words]
        predictions = [[row] for row in rows]  # KServe's extra nesting: [1, seq] per text
        flat = [label for row in rows for label in row]
        tensors = [OutputTensor("output-0", "INT64", [len(texts), 1, width], flat)]
        if self.offsets:
            offsets: list[int] = []
            for text, w in zip(texts, words, strict=True):
                start = 0
                for word in w:
                    start = text.index(word, start)
                    offsets += [start, start + len(word)]
                    start += len(word)
                offsets += [0, 0] * (width - len(w))
            tensors.append(OutputTensor("offset_mapping", "INT64", [len(texts), width, 2], offsets))
        return Prediction(predictions, tensors)

    async def embed(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        self._check_ready()
        self.embed_options.append((truncation, normalize))
        if self.fail_with is not None:
            raise self.fail_with
        if prompt_name is not None:
            if prompt_name not in FAKE_PROMPTS:
                raise InvalidInput(f"unknown prompt_name {prompt_name!r}", param="prompt_name")
            if not all(isinstance(x, str) for x in inputs):
                raise InvalidInput("prompt_name applies to text inputs", param="prompt_name")
            inputs = [FAKE_PROMPTS[prompt_name] + str(x) for x in inputs]
        if dimensions is not None and not 1 <= dimensions <= EMBEDDING_DIM:
            raise InvalidInput(
                f"dimensions must be between 1 and {EMBEDDING_DIM}", param="dimensions"
            )
        sequences = [[ord(c) for c in x] if isinstance(x, str) else list(x) for x in inputs]
        return EmbeddingResult(
            embeddings=[fake_embedding(s, dimensions) for s in sequences],
            prompt_tokens=sum(len(s) + 2 for s in sequences),  # + CLS and SEP
        )

    async def embed_tokens(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> TokenEmbeddings:
        """Per token (a character, or a given id), its fake embedding."""
        result = await self.embed(inputs, None, prompt_name, truncation=truncation)
        sequences = [[ord(c) for c in x] if isinstance(x, str) else list(x) for x in inputs]
        states = [[fake_embedding([t]) for t in s] for s in sequences]
        return TokenEmbeddings(states, result.prompt_tokens)


class FakeRegistry:
    """A ModelRegistry over fixed models (fakes or real ServedModels), for any protocol test."""

    def __init__(self, models: Sequence[Any]) -> None:
        self.models = {m.name: m for m in models}

    def get(self, name: str) -> Any:
        try:
            model = self.models[name]
        except KeyError:
            raise ModelNotFound(name) from None
        note_model(name, "fake")  # as the real registry does: labels the request's metrics
        return model

    def names(self) -> list[str]:
        return list(self.models)

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())

    @property
    def live(self) -> bool:
        return True

    # The model repository extension, as a no-op over the fixed models (fuzzing may unload
    # any model, and must still reach them afterwards).
    async def index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        entries = [RepositoryEntry(name, m.status().state) for name, m in self.models.items()]
        return [e for e in entries if e.state is ModelState.READY or not ready_only]

    async def load(self, name: str) -> None:
        self.get(name)

    async def unload(self, name: str) -> None:
        self.get(name)

    # Runtime LoRA, as a no-op: names are checked, nothing is added or removed.
    async def load_adapter(self, name: str, path: str | None, base_model: str | None) -> None:
        if name in self.models:
            raise InvalidInput(f"The lora adapter '{name}' is a served model.")
        if base_model is not None:
            self.get(base_model)

    async def unload_adapter(self, name: str) -> None:
        raise ModelNotFound(name)


class FakeTextGenerator:
    """A TextGenerator over a byte-level vocabulary (see the module docstring)."""

    def __init__(
        self,
        reply: str = "Hello from the fake model.",
        *,
        max_model_len: int = 256,
        is_encoder_decoder: bool = False,
        step_delay: float = 0.0,
    ) -> None:
        self.reply = reply
        self._max_model_len = max_model_len
        self._is_encoder_decoder = is_encoder_decoder
        self.step_delay = step_delay  # seconds per token, to test streaming and cancellation
        self.sampling_defaults: dict[str, float | int] = {}  # generation_config.json's
        # generation.tool_call_parser: hermes, so tool_choice "auto" is served (and fuzzed).
        self.tool_call_parser: str | None = "hermes"
        self.reasoning_parser: str | None = None  # generation.reasoning_parser

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def is_encoder_decoder(self) -> bool:
        return self._is_encoder_decoder

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [BOS_ID, *ids] if add_special_tokens else ids

    async def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if any(not 0 <= t <= EOS_ID for t in token_ids):
            raise InvalidInput(f"token ids must be between 0 and {EOS_ID}", param="prompt")
        return bytes(t for t in token_ids if t < 256).decode("utf-8", errors="replace")

    async def token_spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        return byte_spans(text, [BOS_ID] if add_special_tokens else [], [])

    async def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        names = {BOS_ID: "<s>", EOS_ID: "</s>"}
        return [names.get(t) or bytes([t]).decode("latin-1") for t in token_ids]

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
        """ChatML, or `chat_template` rendered with jinja2 (errors are InvalidInput)."""
        if chat_template is not None:
            text = self._render_jinja(chat_template, messages, add_generation_prompt, tools)
        else:
            parts = []
            for index, message in enumerate(messages):
                content = message.get("content")
                if isinstance(content, list):
                    content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
                if not isinstance(content, str):
                    raise InvalidInput(f"messages[{index}] has no text content", param="messages")
                last = index == len(messages) - 1
                end = "" if continue_final_message and last else "<|im_end|>\n"
                parts.append(f"<|im_start|>{message.get('role')}\n{content}{end}")
            if add_generation_prompt and not continue_final_message:
                parts.append("<|im_start|>assistant\n")
            text = "".join(parts)
        return await self.tokenize(text, add_special_tokens=False)

    @staticmethod
    def _render_jinja(
        template: str,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        tools: list[dict[str, Any]] | None,
    ) -> str:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            compiled = ImmutableSandboxedEnvironment().from_string(template)
            return compiled.render(
                messages=messages, add_generation_prompt=add_generation_prompt, tools=tools
            )
        except TemplateError as exc:
            raise InvalidInput(f"chat template error: {exc}", param="chat_template") from exc

    def _reply_ids(self, request: GenerationRequest) -> list[int]:
        ids = list(self.reply.encode("utf-8"))
        params = request.params
        if params.temperature > 0 and params.seed and ids:
            shift = params.seed % len(ids)  # "sampling": a seed-dependent, repeatable rotation
            ids = ids[shift:] + ids[:shift]
        return ids

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        params = request.params
        prompt_len = len(request.prompt_token_ids)
        if prompt_len >= self._max_model_len:
            raise InvalidInput(
                f"prompt has {prompt_len} tokens; the maximum context is {self._max_model_len}",
                param="prompt",
            )
        budget = self._max_model_len - prompt_len
        max_tokens = budget if params.max_tokens is None else min(params.max_tokens, budget)
        reply = self._reply_ids(request)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, sent, step = "", 0, 0
        first = True
        if max_tokens <= 0:
            yield self._delta("", [], None, "length", None, first, prompt_len)
            return
        while True:
            if step < len(reply) or params.ignore_eos or step < params.min_tokens:
                token = reply[step % len(reply)] if reply else ord(" ")
            else:
                token = EOS_ID
            step += 1
            # A real engine yields to the loop between steps; this is where cancellation lands.
            await asyncio.sleep(self.step_delay)
            logprobs = self._logprobs(token, params.logprobs)
            if token == EOS_ID:
                yield self._delta(text[sent:], [token], logprobs, "stop", None, first, prompt_len)
                return
            if token in params.stop_token_ids:
                yield self._delta(text[sent:], [token], logprobs, "stop", token, first, prompt_len)
                return
            text += decoder.decode(bytes([token]))
            hit = _first_stop(text, sent, params.stop)
            if hit is not None:
                index, stop = hit
                yield self._delta(
                    text[sent:index], [token], logprobs, "stop", stop, first, prompt_len
                )
                return
            if step >= max_tokens:
                yield self._delta(text[sent:], [token], logprobs, "length", None, first, prompt_len)
                return
            ready_to = max(sent, len(text) - _held_back(text, params.stop))
            yield self._delta(text[sent:ready_to], [token], logprobs, None, None, first, prompt_len)
            sent, first = ready_to, False

    @staticmethod
    def _delta(
        text: str,
        ids: list[int],
        logprobs: list[TokenLogprob] | None,
        finish: Any,
        stop_reason: str | int | None,
        first: bool,
        prompt_len: int,
    ) -> GenerationDelta:
        return GenerationDelta(
            text=text,
            token_ids=ids,
            logprobs=logprobs,
            finish_reason=finish,
            stop_reason=stop_reason,
            prompt_tokens=prompt_len if first else 0,
        )

    @staticmethod
    def _logprobs(token: int, k: int | None) -> list[TokenLogprob] | None:
        if k is None:
            return None
        piece = chr(token) if token < 256 else "</s>"
        top = [(token, piece, -0.25)] + [
            (alt, chr(alt), -1.5 - i) for i, alt in enumerate(range(97, 97 + k - 1))
        ]
        return [TokenLogprob(token, piece, -0.25, top[:k])]


def _first_stop(text: str, sent: int, stops: Sequence[str]) -> tuple[int, str] | None:
    """Earliest stop string in `text` that ends after `sent` (earlier text was checked)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        index = text.find(stop, max(0, sent - len(stop) + 1))
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    return best


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that could still grow into a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def byte_spans(text: str, before: list[int], after: list[int]) -> list[TokenSpan]:
    """The fakes' byte tokens of `text` with their character spans, specials around them."""
    spans = [TokenSpan(t, True) for t in before]
    for index, char in enumerate(text):
        spans += [TokenSpan(byte, False, index, index + 1) for byte in char.encode("utf-8")]
    return spans + [TokenSpan(t, True) for t in after]


class FakeEncoderTokenizer:
    """An encoder's TextTokenizer over bytes: CLS_ID before a text and SEP_ID after it."""

    max_model_len = 512

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [CLS_ID, *ids, SEP_ID] if add_special_tokens else ids

    async def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        bad = next((t for t in token_ids if not 0 <= t <= SEP_ID), None)
        if bad is not None:
            raise InvalidInput(f"token id {bad} is outside the vocabulary [0, {SEP_ID + 1})")
        names = {CLS_ID: "[CLS]", SEP_ID: "[SEP]"}
        if skip_special_tokens:
            token_ids = [t for t in token_ids if t not in names]
        return "".join(names.get(t) or chr(t) for t in token_ids)

    async def token_spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        special = add_special_tokens
        return byte_spans(text, [CLS_ID] if special else [], [SEP_ID] if special else [])

    async def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        names = {CLS_ID: "[CLS]", SEP_ID: "[SEP]"}
        return [names.get(t) or chr(t) for t in token_ids]
