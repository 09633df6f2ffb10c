"""Token classification (NER and the like), with KServe's exact output shapes.

Every text of a request is padded to the request's longest, and pad positions get outputs
too (KServe returns them). V1 per text: `[[label index per position]]` (KServe's extra
nesting); with return_probabilities a list over positions of dict index -> probability
(4 dp); with return_raw_logits dict index -> logit. V2: INT64 [n, 1, seq] or BYTES [n, seq].
return_offsets_mapping adds an `offset_mapping` INT64 [n, seq, 2] tensor (pad positions and
special tokens are (0, 0)), which V1 returns under "outputs".
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
from hf_runtime.types import OutputTensor, Prediction, TensorSpec

OFFSETS_NAME = "offset_mapping"


class TokenClassificationProcessor(EncoderTaskProcessor):
    task = Task.token_classification
    pads_to_request_max = True

    def postprocess(self, encodings: Sequence[Encoding], outputs: Sequence[Any]) -> Prediction:
        predictions = [self._one(np.asarray(logits, dtype=np.float32)) for logits in outputs]
        tensors = [kserve_output_tensor(predictions)]
        if self.options.return_offsets_mapping:
            tensors.append(self._offsets_tensor(encodings, outputs))
        return Prediction(predictions, tensors)

    def _one(self, logits: np.ndarray) -> list[Any]:
        if self.options.return_raw_logits:
            return [{j: float(v) for j, v in enumerate(row)} for row in logits]
        if self.options.return_probabilities:
            return [{j: rounded_4dp(p) for j, p in enumerate(row)} for row in softmax(logits)]
        return [np.argmax(logits, axis=-1).tolist()]

    @staticmethod
    def _offsets_tensor(encodings: Sequence[Encoding], outputs: Sequence[Any]) -> OutputTensor:
        length = len(outputs[0]) if outputs else 0
        data: list[int] = []
        for encoding in encodings:
            offsets = list(encoding.offsets or ())
            offsets += [(0, 0)] * (length - len(offsets))
            for start, end in offsets[:length]:
                data += [start, end]
        return OutputTensor(OFFSETS_NAME, "INT64", [len(encodings), length, 2], data)

    def output_specs(self) -> list[TensorSpec]:
        dict_output = self.options.return_raw_logits or self.options.return_probabilities
        specs = [
            TensorSpec(OUTPUT_NAME, "BYTES", [-1, -1])
            if dict_output
            else TensorSpec(OUTPUT_NAME, "INT64", [-1, 1, -1])
        ]
        if self.options.return_offsets_mapping:
            specs.append(TensorSpec(OFFSETS_NAME, "INT64", [-1, -1, 2]))
        return specs
