"""The Classifier capability of an encoder model: every class's score per text or pair.

A part of `EncoderModel` (its base): texts and pairs of one request run as two batcher jobs
at once (a pair is tokenized as one sequence, as a cross-encoder reads it), then each row of
logits becomes TEI's scores (`tasks.sequence_classification.class_scores`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hf_runtime.backends import Encoding
from hf_runtime.errors import InvalidInput
from hf_runtime.runtime.encoder_jobs import EncoderJobHost
from hf_runtime.tasks.sequence_classification import class_names, class_scores
from hf_runtime.types import Classification, TextPair, Truncation


class EncoderClassification(EncoderJobHost):
    """Implements hf_runtime.model.Classifier over the host's jobs (EncoderModel's)."""

    @property
    def max_inputs(self) -> int:
        return self.batcher.max_queue_size

    async def classify(
        self,
        inputs: Sequence[str | TextPair],
        *,
        raw_scores: bool = False,
        truncation: Truncation | None = None,
    ) -> Classification:
        texts = [(i, x) for i, x in enumerate(inputs) if isinstance(x, str)]
        pairs = [(i, (x.text, x.text_pair)) for i, x in enumerate(inputs) if not isinstance(x, str)]
        if not inputs:
            raise InvalidInput("inputs is empty: send at least one text", param="inputs")

        def rows(encodings: list[Encoding], outputs: list[Any]) -> tuple[list[Any], int]:
            scores = [class_scores(output, raw_scores) for output in outputs]
            return scores, sum(len(e) for e in encodings)

        jobs = []
        if texts:
            jobs.append(self._text_job([t for _, t in texts], "inputs", rows, 0, truncation))
        if pairs:
            jobs.append(self._pair_job([p for _, p in pairs], truncation, rows))
        results = await asyncio.gather(*(self.batcher.run(job) for job in jobs))
        ordered: list[list[float]] = [[] for _ in inputs]
        indexes = [[i for i, _ in group] for group in (texts, pairs) if group]
        tokens = 0
        for group, (scores, counted) in zip(indexes, results, strict=True):
            tokens += counted
            for index, row in zip(group, scores, strict=True):
                ordered[index] = row
        labels = class_names(getattr(self.processor, "id2label", {}), len(ordered[0]))
        return Classification(ordered, labels, tokens)
