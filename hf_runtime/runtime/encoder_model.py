"""Encoder-task models as ServedModels: tokenize -> batched forward -> task postprocess.

`EncoderModel` is backend-neutral: a task processor (`hf_runtime.tasks`) and a batcher over
any `EncoderBackend` (huggingface's torch encoder, vLLM's pooling runner). Tokenizing and
postprocessing run in worker threads (`asyncio.to_thread`), forward passes in the batcher's
single inference thread; the event loop only validates and routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.config import ModelConfig
from hf_runtime.errors import InvalidInput, TooLarge
from hf_runtime.model import Embedder, Predictor, Scorer
from hf_runtime.runtime.batcher import EncoderBatcher
from hf_runtime.runtime.served_model import ServedModelBase
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions, too_long
from hf_runtime.tasks.names import Task
from hf_runtime.types import (
    EmbeddingResult,
    ModelMetadata,
    OutputOptions,
    Prediction,
    ScoreResult,
)

if TYPE_CHECKING:
    from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor

request_logger = logging.getLogger("hf_runtime.requests")

MAX_LOGGED_INSTANCES = 8  # per request log line; the line also gives the total count


class EncoderModel(ServedModelBase):
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
        # Capabilities, decided once: every encoder task but rerank predicts on texts;
        # embedding models embed; cross-encoders and embedding models score text pairs.
        capabilities: dict[type, object] = {}
        if task is not Task.rerank:
            capabilities[Predictor] = self
        if task is Task.text_embedding:
            capabilities[Embedder] = self
        if task in (Task.rerank, Task.text_embedding):
            capabilities[Scorer] = self
        super().__init__(config, task, platform, capabilities)
        self.encoder = encoder
        self.processor = processor
        # Left padding shifts real tokens when a batch pads further than the request would,
        # so such models pad each request like KServe and only share passes of equal length.
        self._pad_to_request_max = encoder.padding_side == "left"
        spec = processor.forward_spec
        self.batcher = EncoderBatcher(
            lambda items: encoder.forward(items, spec),
            config.batching,
            name=config.model_name,
            exact_lengths=self._pad_to_request_max,
            backend=platform,
        )
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready and self.encoder.ready

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(
            name=self.name,
            task=self.task,
            platform=self._platform,
            inputs=self.processor.input_specs(),
            outputs=self.processor.output_specs(),
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
        # In a thread: checking, logging and tokenizing a megabyte of instances is not loop work.
        encodings = await asyncio.to_thread(self._encode_instances, instances)
        return await self._run(encodings, processor_options)

    def _encode_instances(self, instances: Sequence[str]) -> list[Encoding]:
        texts = self.processor.decode_instances(instances)
        self._log_request(texts)
        return self._tokenize(texts, "instances")

    def _tokenize(self, texts: Sequence[str], param: str) -> list[Encoding]:
        """Blocking. With auto_truncate (KServe's behaviour) texts are cut to the model's
        maximum length; without it (TEI's `auto_truncate: false`) a longer text is refused
        with TooLarge naming it, rather than silently embedded or classified on a prefix."""
        if self.config.auto_truncate:
            return self.encoder.tokenize(texts)
        encodings = self.encoder.tokenize(texts, truncate=False)
        limit = self.encoder.max_length
        for index, encoding in enumerate(encodings):
            if len(encoding) > limit:
                raise too_long(index, len(encoding), limit, param)
        return encodings

    async def _run(
        self, encodings: list[Encoding], options: ProcessorOptions | None = None
    ) -> Prediction:
        outputs = await self._forward(encodings)
        return await asyncio.to_thread(self.processor.postprocess, encodings, outputs, options)

    async def _forward(self, encodings: list[Encoding]) -> list[Any]:
        items = self.processor.forward_items(encodings, pad_to_request_max=self._pad_to_request_max)
        return await self.batcher.submit(items)

    async def embed(
        self, inputs: Sequence[str] | Sequence[Sequence[int]], dimensions: int | None = None
    ) -> EmbeddingResult:
        from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor

        processor = self.processor
        # Embedder is offered only for text_embedding (see __init__): never reached otherwise.
        assert isinstance(processor, TextEmbeddingProcessor), self.task
        processor.check_dimensions(dimensions)
        # In a thread: checking and wrapping up to 2048 token lists is not loop work.
        encodings = await asyncio.to_thread(self._embedding_encodings, processor, inputs)
        outputs = await self._forward(encodings)
        return await asyncio.to_thread(processor.embedding_result, encodings, outputs, dimensions)

    def _embedding_encodings(
        self, processor: TextEmbeddingProcessor, inputs: Any
    ) -> list[Encoding]:
        """Blocking: OpenAI `input` (texts or token lists) checked and tokenized."""
        decoded = processor.decode_embedding_inputs(inputs, auto_truncate=self.config.auto_truncate)
        if decoded and isinstance(decoded[0], str):
            texts = [str(text) for text in decoded]
            self._log_request(texts)
            return self._tokenize(texts, "input")
        token_lists = [list(ids) for ids in decoded if not isinstance(ids, str)]
        self._log_request([f"<{len(ids)} token ids>" for ids in token_lists])
        return self.encoder.encode_ids(token_lists)

    # ------------------------------------------------------------------ Scorer

    @property
    def max_pairs(self) -> int:
        return self.batcher.max_queue_size

    async def score(self, text_1: Sequence[str], text_2: Sequence[str]) -> ScoreResult:
        if len(text_1) not in (1, len(text_2)):
            raise InvalidInput(
                f"{len(text_1)} queries for {len(text_2)} documents: give one query, or one "
                "per document"
            )
        if self._task is Task.rerank:
            firsts = list(text_1) * len(text_2) if len(text_1) == 1 else list(text_1)
            # In a thread: tokenising up to max_queue_size pairs is not loop work.
            encodings = await asyncio.to_thread(self._pair_encodings, firsts, list(text_2))
            prediction = await self._run(encodings)
            return ScoreResult(list(prediction.predictions), sum(len(e) for e in encodings))
        # An embedding model: each side embedded once (a 1:N query only once), in one request
        # to the batcher when both fit its queue (two would queue more than one request may),
        # else one side after the other.
        from hf_runtime.tasks.text_embedding import cosine_scores

        texts = [*text_1, *text_2]
        if len(texts) <= self.max_pairs:
            both = await self._embed_texts(texts)
            vectors, tokens = both.embeddings, both.prompt_tokens
        else:
            first, second = await self._embed_texts(text_1), await self._embed_texts(text_2)
            vectors = first.embeddings + second.embeddings
            tokens = first.prompt_tokens + second.prompt_tokens
        split = len(text_1)
        scores = await asyncio.to_thread(cosine_scores, vectors[:split], vectors[split:])
        return ScoreResult(scores, tokens)

    def _pair_encodings(self, firsts: list[str], seconds: list[str]) -> list[Encoding]:
        """Blocking: pairs logged and tokenised; without auto_truncate a pair longer than the
        model takes is refused (TooLarge) rather than scored on a cut document."""
        pairs = zip(firsts, seconds, strict=True)
        self._log_request([f"{first} || {second}" for first, second in pairs])
        truncate = self.config.auto_truncate
        encodings = self.encoder.tokenize_pairs(firsts, seconds, truncate=truncate)
        limit = self.encoder.max_length
        for index, encoding in enumerate(encodings):
            if len(encoding) > limit:
                raise TooLarge(
                    f"pair {index} has {len(encoding)} tokens (query and document together, "
                    f"special tokens included), more than this model's maximum of {limit}; the "
                    "server is configured not to truncate inputs (auto_truncate: false), so "
                    "shorten the document"
                )
        return encodings

    async def _embed_texts(self, texts: Sequence[str]) -> EmbeddingResult:
        from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor

        processor = self.processor
        assert isinstance(processor, TextEmbeddingProcessor), self.task  # see __init__
        encodings = await asyncio.to_thread(self._encode_texts, texts)
        outputs = await self._forward(encodings)
        return await asyncio.to_thread(processor.embedding_result, encodings, outputs, None)

    def _encode_texts(self, texts: Sequence[str]) -> list[Encoding]:
        self._log_request(texts)
        return self._tokenize(texts, "documents")

    def _log_request(self, texts: Sequence[str]) -> None:
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
        request_logger.info(
            "model %s: %d instance(s): %r%s",
            self.name, len(texts), shown, f" ... {more} more" if more else "",
        )  # fmt: skip

    async def aclose(self) -> None:
        self._ready = False
        await self.batcher.close()
        await self.encoder.aclose()
