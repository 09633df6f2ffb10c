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
from hf_runtime.model import Embedder, Predictor
from hf_runtime.runtime.batcher import EncoderBatcher
from hf_runtime.runtime.served_model import ServedModelBase
from hf_runtime.tasks.base import INPUT_SPEC, EncoderTaskProcessor, too_long
from hf_runtime.tasks.names import Task
from hf_runtime.types import EmbeddingResult, ModelMetadata, Prediction

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
        # Capabilities, decided once: every encoder task predicts; embedding models embed.
        capabilities: dict[type, object] = {Predictor: self}
        if task is Task.text_embedding:
            capabilities[Embedder] = self
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
            inputs=[INPUT_SPEC],
            outputs=self.processor.output_specs(),
        )

    def stats(self) -> dict[str, int]:
        """Batcher counters for /metrics (see EncoderBatcher.stats)."""
        return self.batcher.stats()

    async def predict(self, instances: Sequence[str]) -> Prediction:
        # In a thread: checking, logging and tokenizing a megabyte of instances is not loop work.
        encodings = await asyncio.to_thread(self._encode_instances, instances)
        return await self._run(encodings)

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

    async def _run(self, encodings: list[Encoding]) -> Prediction:
        outputs = await self._forward(encodings)
        return await asyncio.to_thread(self.processor.postprocess, encodings, outputs)

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
