"""Sequence classification (text classification), with KServe's exact output shapes.

V1 per text: the argmax label index; with return_probabilities a dict index -> softmax
probability rounded to 4 dp; with return_raw_logits a dict index -> logit.
V2: INT64 [n] for indices, BYTES [n] holding `str(dict)` for the dict forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_runtime.backends import Encoding
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    kserve_output_tensor,
    rounded_4dp,
    softmax,
)
from hf_runtime.tasks.names import Task
from hf_runtime.types import Prediction, TensorSpec


class SequenceClassificationProcessor(EncoderTaskProcessor):
    task = Task.sequence_classification

    def postprocess(self, encodings: Sequence[Encoding], outputs: Sequence[Any]) -> Prediction:
        predictions = [self._one(np.asarray(logits, dtype=np.float32)) for logits in outputs]
        return Prediction(predictions, [kserve_output_tensor(predictions)])

    def _one(self, logits: np.ndarray) -> int | dict[int, float]:
        logits = logits.reshape(-1)  # a one-label head still gives one value per text
        if self.options.return_raw_logits:
            return {j: float(value) for j, value in enumerate(logits)}
        if self.options.return_probabilities:
            return {j: rounded_4dp(p) for j, p in enumerate(softmax(logits))}
        return int(np.argmax(logits))

    def output_specs(self) -> list[TensorSpec]:
        dict_output = self.options.return_raw_logits or self.options.return_probabilities
        return [TensorSpec(OUTPUT_NAME, "BYTES" if dict_output else "INT64", [-1])]
