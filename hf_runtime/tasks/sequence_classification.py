"""Sequence classification (text classification), with KServe's exact output shapes.

V1 per text: the argmax label index; with return_probabilities a dict index -> softmax
probability rounded to 4 dp; with return_raw_logits a dict index -> logit.
V2: INT64 [n] for indices, BYTES [n] holding `str(dict)` for the dict forms.

Opt-in (return_labels and/or top_k, per model or per request), as transformers'
text-classification pipeline: {"label", "score"} for the best label, or a list of the top_k
best; labels are id2label names with return_labels, else class indexes; scores are sigmoids
for multi-label checkpoints and one-label heads, else softmax. V2: BYTES [n] of JSON strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    ProcessorOptions,
    json_output_tensor,
    kserve_output_tensor,
    rounded_4dp,
    softmax,
)
from hf_runtime.tasks.class_scores import read_classifier_head
from hf_runtime.tasks.hf_config import hf_config_or_empty
from hf_runtime.tasks.registry import Task
from hf_runtime.types import Prediction, TensorSpec


def read_label_config(model_path: Path | None) -> tuple[dict[int, str], bool]:
    """(id2label, multi_label) from the checkpoint's config.json ({} / False when absent)."""
    config = hf_config_or_empty(model_path)
    labels = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    return labels, config.get("problem_type") == "multi_label_classification"


def class_scores(logits: np.ndarray, raw_scores: bool) -> list[float]:
    """TEI's scores for one row of logits: raw, else sigmoid for a one-label head and
    softmax otherwise (TEI does not read problem_type)."""
    row = np.asarray(logits, dtype=np.float32).reshape(-1)
    if raw_scores:
        values = row
    elif row.size == 1:
        values = np.float32(1) / (np.float32(1) + np.exp(-row))
    else:
        values = softmax(row)
    return [float(v) for v in values]


def class_names(id2label: dict[int, str], count: int) -> list[str]:
    """Each class's name: id2label's, else transformers' default "LABEL_<i>"."""
    return [id2label.get(index, f"LABEL_{index}") for index in range(count)]


class SequenceClassificationProcessor(EncoderTaskProcessor):
    task = Task.sequence_classification

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        id2label: dict[int, str] | None = None,
        multi_label: bool = False,
    ) -> None:
        super().__init__(backend, options)
        self.id2label = id2label or {}
        self.multi_label = multi_label

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        options = options or self.options
        logits = [np.asarray(row, dtype=np.float32).reshape(-1) for row in outputs]
        if options.return_labels or options.top_k is not None:
            labelled = [self._labelled(row, options) for row in logits]
            return Prediction(labelled, [json_output_tensor(labelled)])
        predictions = [self._one(row, options) for row in logits]
        return Prediction(predictions, [kserve_output_tensor(predictions)])

    @staticmethod
    def _one(logits: np.ndarray, options: ProcessorOptions) -> int | dict[int, float]:
        # `logits` is flat: a one-label head still gives one value per text.
        if options.return_raw_logits:
            return {j: float(value) for j, value in enumerate(logits)}
        if options.return_probabilities:
            return {j: rounded_4dp(p) for j, p in enumerate(softmax(logits))}
        return int(np.argmax(logits))

    def _labelled(self, logits: np.ndarray, options: ProcessorOptions) -> Any:
        # transformers' "sigmoid if multi-label or one label, else softmax" rule.
        if self.multi_label or logits.size == 1:
            scores = 1.0 / (1.0 + np.exp(-logits))
        else:
            scores = softmax(logits)
        order = np.argsort(-scores, kind="stable")
        ranked = [{"label": self._label(int(j), options), "score": float(scores[j])} for j in order]
        if options.top_k is None:
            return ranked[0]
        return ranked[: options.top_k]

    def _label(self, index: int, options: ProcessorOptions) -> str | int:
        if options.return_labels:
            return self.id2label.get(index, f"LABEL_{index}")
        return index

    def output_specs(self) -> list[TensorSpec]:
        options = self.options
        dict_output = options.return_raw_logits or options.return_probabilities
        dict_output = dict_output or options.return_labels or options.top_k is not None
        return [TensorSpec(OUTPUT_NAME, "BYTES" if dict_output else "INT64", [-1])]


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> SequenceClassificationProcessor:
    id2label, multi_label = read_label_config(model_path)
    processor = SequenceClassificationProcessor(backend, options, id2label, multi_label)
    processor.classifier_head = read_classifier_head(model_path)
    return processor
