"""The Scorer capability of an encoder model: a similarity score per (query, document) pair.

A part of `EncoderModel` (its base): a cross-encoder reads each pair as one sequence (the
host's pair job); an embedding model embeds both sides as unit vectors and compares them by
cosine, each side once (a 1:N query only once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hf_runtime.backends import Encoding
from hf_runtime.errors import InvalidInput
from hf_runtime.runtime.encoder_jobs import EncoderJobHost
from hf_runtime.tasks.registry import Task
from hf_runtime.types import EmbeddingResult, ScoreResult, Truncation

# Score vectors compared on the event loop (a few µs of numpy); more in a worker thread.
INLINE_COSINE_VECTORS = 16


class EncoderScoring(EncoderJobHost):
    """Implements hf_runtime.model.Scorer over the host's jobs (EncoderModel's)."""

    _task: Task

    @property
    def max_pairs(self) -> int:
        return self.batcher.max_queue_size

    async def score(
        self,
        text_1: Sequence[str],
        text_2: Sequence[str],
        *,
        truncation: Truncation | None = None,
    ) -> ScoreResult:
        if len(text_1) not in (1, len(text_2)):
            raise InvalidInput(
                f"{len(text_1)} queries for {len(text_2)} documents: give one query, or one "
                "per document"
            )
        if self._task.spec.pair_inputs:  # a cross-encoder reads each pair at once
            firsts = list(text_1) * len(text_2) if len(text_1) == 1 else list(text_1)
            pairs = list(zip(firsts, text_2, strict=True))
            return await self.batcher.run(self._pair_job(pairs, truncation))
        # An embedding model: each side embedded once (a 1:N query only once), in one request
        # to the batcher when both fit its queue (two would queue more than one request may),
        # else one side after the other.
        from hf_runtime.tasks.text_embedding import cosine_scores

        texts = [*text_1, *text_2]
        if len(texts) <= self.max_pairs:
            both = await self._embed_texts(texts, truncation)
            vectors, tokens = both.embeddings, both.prompt_tokens
        else:
            first = await self._embed_texts(text_1, truncation)
            second = await self._embed_texts(text_2, truncation)
            vectors = first.embeddings + second.embeddings
            tokens = first.prompt_tokens + second.prompt_tokens
        split = len(text_1)
        if len(vectors) <= INLINE_COSINE_VECTORS:  # a thread hop would cost more than numpy
            scores = cosine_scores(vectors[:split], vectors[split:])
        else:
            scores = await asyncio.to_thread(cosine_scores, vectors[:split], vectors[split:])
        return ScoreResult(scores, tokens)

    async def _embed_texts(
        self, texts: Sequence[str], truncation: Truncation | None = None
    ) -> EmbeddingResult:
        from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor

        processor = self.processor
        # Only a text embedding model embeds to score (a cross-encoder reads pairs).
        assert isinstance(processor, TextEmbeddingProcessor), self._task

        def finish(encodings: list[Encoding], outputs: list[Any]) -> EmbeddingResult:
            # Unit vectors whatever normalize_embeddings says: their dot product is the cosine.
            return processor.embedding_result(encodings, outputs, None, normalize=True)

        prompted = processor.with_prompt(texts)  # the model's default prompt, as encode()
        job = self._text_job(prompted, "documents", finish, processor.prompt_length(), truncation)
        return await self.batcher.run(job)
