"""Encoder-task models as ServedModels: tokenize -> batched forward -> task postprocess.

`EncoderModel` is backend-neutral: a task processor (`hf_runtime.tasks`) and a batcher over
any `EncoderBackend` (huggingface's torch encoder, vLLM's pooling runner). A request becomes
one `EncoderJob`: the batcher tokenizes every job of a batch in one tokenizer call, runs the
forward passes and postprocesses, all in the model's inference thread, in one hop per batch
(see hf_runtime.runtime.batcher); the event loop only validates and routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.config import ModelConfig
from hf_runtime.errors import InvalidInput, TooLarge, Unsupported
from hf_runtime.model import Pooler
from hf_runtime.observability.context import current_request_id
from hf_runtime.runtime.batcher import EncoderBatcher, EncoderJob
from hf_runtime.runtime.encoder_classification import EncoderClassification
from hf_runtime.runtime.encoder_pooling import EncoderPooler
from hf_runtime.runtime.encoder_scoring import EncoderScoring
from hf_runtime.runtime.served_model import ServedModelBase
from hf_runtime.tasks.base import EncoderTaskProcessor, too_long
from hf_runtime.tasks.registry import Task
from hf_runtime.types import (
    EmbeddingResult,
    ModelMetadata,
    OutputOptions,
    Prediction,
    ScoreResult,
    SparseEmbeddingResult,
    TokenEmbeddings,
    TokenSpan,
    Truncation,
)

if TYPE_CHECKING:
    from hf_runtime.tasks.embedding_base import EmbeddingProcessor

request_logger = logging.getLogger("hf_runtime.requests")

MAX_LOGGED_INSTANCES = 8  # per request log line; the line also gives the total count


class EncoderModel(ServedModelBase, EncoderClassification, EncoderScoring):
    """A loaded encoder-task model on any backend. Implements hf_runtime.model.ServedModel.

    `platform` is the backend's name (metadata, metric labels); `encoder` runs the model.
    """

    def __init__(
        self,
        config: ModelConfig,
        task: Task,
        encoder: EncoderBackend,
        processor: EncoderTaskProcessor,
        *,
        platform: str,
    ) -> None:
        # Capabilities: those the task declares (tasks.registry); this class implements them
        # all (Predictor, Embedder, Scorer, TextTokenizer, Classifier) but Pooler (EncoderPooler's).
        super().__init__(config, task, platform)
        self.encoder = encoder
        self.processor = processor
        # Left padding shifts real tokens when a batch pads further than the request would,
        # so such models pad each request like KServe and only share passes of equal length.
        self._pad_to_request_max = encoder.padding_side == "left"
        if Pooler in self._capabilities:
            self._capabilities[Pooler] = EncoderPooler(self)
        spec = processor.forward_spec
        self.batcher = EncoderBatcher(
            lambda items: encoder.forward(items, spec),
            config.batching,
            tokenize_batch=self._tokenize_batch,
            name=config.model_name,
            exact_lengths=self._pad_to_request_max,
            backend=platform,
        )
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready and self.encoder.ready

    def engine_failure(self) -> str | None:
        # getattr: an engine that cannot die (a test's) need not say so.
        return getattr(self.encoder, "failure", None) if self._ready else None

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(
            name=self.name,
            task=self.task,
            platform=self._platform,
            inputs=self.processor.input_specs(),
            outputs=self.processor.output_specs(),
            facts=self.facts(
                pooling=tuple(getattr(self.processor, "pooling", ())),
                labels=dict(getattr(self.processor, "id2label", {})),
            ),
        )

    def stats(self) -> dict[str, int]:
        """Batcher counters for /metrics (see EncoderBatcher.stats)."""
        return self.batcher.stats()

    async def predict(
        self, instances: Sequence[str], options: OutputOptions | None = None
    ) -> Prediction:
        # The request's options go into a fresh ProcessorOptions for this call only: the
        # processor is shared by every request.
        processor_options = self.processor.options.with_request(options)
        texts = self.processor.decode_instances(instances, processor_options)
        skip = self.processor.prompt_length(processor_options)

        def finish(encodings: list[Encoding], outputs: list[Any]) -> Prediction:
            return self.processor.postprocess(encodings, outputs, processor_options)

        return await self.batcher.run(self._text_job(texts, "instances", finish, skip))

    # Tokenizing runs in the batcher's hop, for every job of a batch at once: a job names how
    # its inputs are tokenized (a key of `_tokenize_batch`) and checks its encodings itself.

    def _tokenize_batch(self, key: Hashable, inputs: list[Any]) -> list[Encoding]:
        """Blocking (the inference thread): ("texts" or "pairs", truncate, truncation side)."""
        kind, truncate, side = key  # type: ignore[misc]
        if kind == "pairs":
            firsts, seconds = [p[0] for p in inputs], [p[1] for p in inputs]
            return self.encoder.tokenize_pairs(
                firsts, seconds, truncate=truncate, truncation_side=side
            )
        return self.encoder.tokenize(inputs, truncate=truncate, truncation_side=side)

    def _truncating(self, truncation: Truncation | None) -> tuple[bool, str]:
        """(cut over-long texts?, from which side): the request's, else auto_truncate."""
        truncation = truncation or Truncation()
        enabled = self.config.auto_truncate if truncation.enabled is None else truncation.enabled
        return enabled, truncation.side

    def _text_job(
        self,
        texts: Sequence[str],
        param: str,
        finish: Callable[[list[Encoding], list[Any]], Any],
        prompt_length: int = 0,
        truncation: Truncation | None = None,
        token_states: bool = False,
    ) -> EncoderJob:
        """A job over `texts`. With auto_truncate (KServe's behaviour) texts are cut to the
        model's maximum length; without it (TEI's `auto_truncate: false`) a longer text is
        refused with TooLarge naming it, rather than silently embedded or classified on a
        prefix; `truncation` is one request's choice of both (TEI's `truncate`,
        `truncation_direction`). `prompt_length`: the leading tokens (a prompt) pooling leaves
        out; `token_states`: per-token states instead of pooled vectors. The request is
        logged from the inference thread, with its request id."""
        request_id = current_request_id()
        truncate, side = self._truncating(truncation)

        def prepare(encodings: list[Encoding]) -> list[Any]:
            self._log_request(texts, request_id)
            if not truncate:
                limit = self.encoder.max_length
                for index, encoding in enumerate(encodings):
                    if len(encoding) > limit:
                        raise too_long(index, len(encoding), limit, param)
            return self._forward_items(encodings, prompt_length, token_states)

        key = ("texts", truncate, side)
        return EncoderJob(list(texts), tokenize=key, prepare=prepare, finish=finish)

    def _forward_items(
        self, encodings: list[Encoding], prompt_length: int = 0, token_states: bool = False
    ) -> list[Any]:
        items = self.processor.forward_items(encodings, pad_to_request_max=self._pad_to_request_max)
        if prompt_length or token_states:
            changes = {"prompt_length": prompt_length, "token_states": token_states}
            items = [replace(item, **changes) for item in items]
        return items

    async def embed(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        processor = self._embedding_processor()
        processor.check_dimensions(dimensions)

        def finish(encodings: list[Encoding], outputs: list[Any]) -> EmbeddingResult:
            return processor.embedding_result(encodings, outputs, dimensions, normalize)

        return await self.batcher.run(
            await self._embedding_job(inputs, prompt_name, truncation, finish)
        )

    async def embed_tokens(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> TokenEmbeddings:
        from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor

        if not isinstance(self._embedding_processor(), TextEmbeddingProcessor):
            raise Unsupported(
                f"Model {self.name} ({self.task}) has no per-token embeddings: a sparse "
                "embedding model's vectors are pooled from its masked-LM head",
                param="model",
            )

        def finish(encodings: list[Encoding], outputs: list[Any]) -> TokenEmbeddings:
            vectors = [[list(map(float, row)) for row in states] for states in outputs]
            return TokenEmbeddings(vectors, sum(len(e) for e in encodings))

        job = await self._embedding_job(inputs, prompt_name, truncation, finish, True)
        return await self.batcher.run(job)

    async def embed_sparse(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> SparseEmbeddingResult:
        from hf_runtime.tasks.sparse_embedding import SparseEmbeddingProcessor

        processor = self.processor
        # SparseEmbedder is offered only for sparse_embedding: never reached otherwise.
        assert isinstance(processor, SparseEmbeddingProcessor), self.task

        def finish(encodings: list[Encoding], outputs: list[Any]) -> SparseEmbeddingResult:
            return processor.sparse_result(encodings, outputs)

        job = await self._embedding_job(inputs, prompt_name, truncation, finish)
        return await self.batcher.run(job)

    def _embedding_processor(self) -> EmbeddingProcessor:
        from hf_runtime.tasks.embedding_base import EmbeddingProcessor

        processor = self.processor
        # Embedder is offered only for the embedding tasks: never reached otherwise.
        assert isinstance(processor, EmbeddingProcessor), self.task
        return processor

    async def _embedding_job(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None,
        truncation: Truncation | None,
        finish: Callable[[list[Encoding], list[Any]], Any],
        token_states: bool = False,
    ) -> EncoderJob:
        """The job embedding texts (with their prompt) or token-id lists (as given)."""
        processor = self._embedding_processor()
        options = processor.options.with_request(OutputOptions(prompt_name=prompt_name))
        if isinstance(inputs, str) or (
            isinstance(inputs, (list, tuple)) and all(isinstance(x, str) for x in inputs)
        ):
            texts = processor.with_prompt(processor.decode_embedding_inputs(inputs), options)
            skip = processor.prompt_length(options)
            texts = [str(t) for t in texts]
            return self._text_job(texts, "input", finish, skip, truncation, token_states)
        processor.check_token_input_prompt(options)
        # In a thread: checking and wrapping up to 2048 token lists is not loop work.
        encodings = await asyncio.to_thread(self._token_id_encodings, processor, inputs)
        return EncoderJob(
            self._forward_items(encodings, token_states=token_states),
            finish=lambda _, outputs: finish(encodings, outputs),
        )

    def _token_id_encodings(self, processor: EmbeddingProcessor, inputs: Any) -> list[Encoding]:
        """Blocking: OpenAI `input` token lists checked against the vocabulary and length."""
        decoded = processor.decode_embedding_inputs(inputs, auto_truncate=self.config.auto_truncate)
        token_lists = [list(ids) for ids in decoded if not isinstance(ids, str)]
        self._log_request([f"<{len(ids)} token ids>" for ids in token_lists])
        return self.encoder.encode_ids(token_lists)

    def _pair_job(
        self,
        pairs: list[tuple[str, str]],
        truncation: Truncation | None = None,
        finish: Callable[[list[Encoding], list[Any]], Any] | None = None,
    ) -> EncoderJob:
        """(query, document) pairs scored by a cross-encoder; without auto_truncate a pair
        longer than the model takes is refused (TooLarge) rather than scored on a cut
        document."""
        request_id = current_request_id()

        def prepare(encodings: list[Encoding]) -> list[Any]:
            self._log_request([f"{first} || {second}" for first, second in pairs], request_id)
            limit = self.encoder.max_length
            for index, encoding in enumerate(encodings):
                if len(encoding) > limit:
                    raise TooLarge(
                        f"pair {index} has {len(encoding)} tokens (query and document "
                        f"together, special tokens included), more than this model's maximum "
                        f"of {limit}; inputs are not truncated (the server's auto_truncate: "
                        "false, or the request's truncate: false), so shorten the document"
                    )
            return self._forward_items(encodings)

        def scores(encodings: list[Encoding], outputs: list[Any]) -> ScoreResult:
            prediction = self.processor.postprocess(encodings, outputs, None)
            return ScoreResult(list(prediction.predictions), sum(len(e) for e in encodings))

        key = ("pairs", *self._truncating(truncation))
        return EncoderJob(pairs, tokenize=key, prepare=prepare, finish=finish or scores)

    # ------------------------------------------------------------------ TextTokenizer

    @property
    def max_model_len(self) -> int:
        return self.encoder.max_length

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        # Never truncated: /tokenize shows the whole text's tokens, as vLLM's does.
        encodings = await asyncio.to_thread(
            self.encoder.tokenize, [text], truncate=False, add_special_tokens=add_special_tokens
        )
        return list(encodings[0].input_ids)

    async def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return await asyncio.to_thread(self._decode_checked, list(token_ids), skip_special_tokens)

    async def token_spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        return await asyncio.to_thread(self.encoder.token_spans, text, add_special_tokens)

    async def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        strings = await asyncio.to_thread(self.encoder.token_strings, list(token_ids))
        return list(strings.tokens)

    def _decode_checked(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        """Blocking (a long id list takes a while to check): ids outside the model's
        embeddings are refused before the tokenizer sees them."""
        limit = self.encoder.vocab_size
        bad = next((t for t in token_ids if not 0 <= t < limit), None)
        if bad is not None:
            raise InvalidInput(f"token id {bad} is outside the vocabulary [0, {limit})")
        return self.encoder.decode(token_ids, skip_special_tokens)

    def _log_request(self, texts: Sequence[str], request_id: str | None = None) -> None:
        """Log the inputs unless disabled; max_log_len shortens the LOG only, never the input
        (KServe's logger truncated the instances it then ran). The inputs are the client's:
        at most MAX_LOGGED_INSTANCES of them, each cut to max_log_len and repr()'d, so a
        request can neither flood the log nor forge a line."""
        if self.config.disable_log_requests or not request_logger.isEnabledFor(logging.INFO):
            return
        limit = self.config.max_log_len
        shown = [
            t if limit is None or len(t) <= limit else t[:limit] + "..."
            for t in texts[:MAX_LOGGED_INSTANCES]
        ]
        more = len(texts) - len(shown)
        # From the inference thread the request's id comes along explicitly (no context there).
        extra = {"request_id": request_id} if request_id is not None else None
        request_logger.info(
            "model %s: %d instance(s): %r%s",
            self.name, len(texts), shown, f" ... {more} more" if more else "",
            extra=extra,
        )  # fmt: skip

    async def aclose(self) -> None:
        self._ready = False
        await self.batcher.close()
        await self.encoder.aclose()
