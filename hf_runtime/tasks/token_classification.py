"""Token classification (NER and the like), with KServe's exact output shapes.

Every text of a request is padded to the request's longest, and pad positions get outputs
too (KServe returns them). V1 per text: `[[label index per position]]` (KServe's extra
nesting); with return_probabilities a list over positions of dict index -> probability
(4 dp); with return_raw_logits dict index -> logit. V2: INT64 [n, 1, seq] or BYTES [n, seq].
return_offsets_mapping adds an `offset_mapping` INT64 [n, seq, 2] tensor (pad positions and
special tokens are (0, 0)), which V1 returns under "outputs".

Opt-in aggregation_strategy (per model or per request), as transformers' token-classification
pipeline: per text a list of entities {"entity_group" ("entity" and "index" for none),
"score", "word", "start", "end"}, "O" left out, special and pad positions excluded
(see tasks/entity_grouping.py). V2: BYTES [n] of JSON strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    ProcessorOptions,
    json_output_tensor,
    kserve_output_tensor,
    rounded_4dp,
    softmax,
)
from hf_runtime.tasks.entity_grouping import (
    WORD_STRATEGIES,
    TokenInfo,
    group,
    is_subword,
    pipeline_softmax,
)
from hf_runtime.tasks.registry import Task
from hf_runtime.tasks.sequence_classification import read_label_config
from hf_runtime.types import OutputTensor, Prediction, TensorSpec

OFFSETS_NAME = "offset_mapping"


class TokenClassificationProcessor(EncoderTaskProcessor):
    task = Task.token_classification
    pads_to_request_max = True

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        id2label: dict[int, str] | None = None,
    ) -> None:
        super().__init__(backend, options)
        self.id2label = id2label or {}

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        strategy = (options or self.options).aggregation_strategy
        if strategy is not None:
            entities = [
                self._entities(encoding, np.asarray(logits, dtype=np.float32), strategy)
                for encoding, logits in zip(encodings, outputs, strict=True)
            ]
            return Prediction(entities, [json_output_tensor(entities)])
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

    def _entities(
        self, encoding: Encoding, logits: np.ndarray, strategy: str
    ) -> list[dict[str, Any]]:
        """One text's entities, as transformers' pipeline groups them."""
        # Pad positions take no part (they come first when the tokenizer pads on the left).
        n = len(encoding)
        real = logits[len(logits) - n :] if self.backend.padding_side == "left" else logits[:n]
        offsets, text = encoding.offsets, encoding.text
        if (offsets is None or text is None) and strategy in WORD_STRATEGIES:
            raise InvalidInput(
                f"aggregation_strategy {strategy} needs a fast (tokenizers-backed) tokenizer, "
                "which this model lacks; use none or simple",
                param="aggregation_strategy",
            )
        strings = self.backend.token_strings(encoding.input_ids)
        scores = pipeline_softmax(real)
        tokens = []
        for index, token_scores in enumerate(scores):
            if strings.special[index]:
                continue
            word = strings.tokens[index]
            start: int | None = None
            end: int | None = None
            subword = False
            if offsets is not None and text is not None:
                start, end = offsets[index]
                unknown = strings.unknown[index]
                subword = is_subword(
                    text, word, start, end, word_aware=strings.word_aware, unknown=unknown
                )
                if unknown:
                    word = text[start:end]
            tokens.append(TokenInfo(index, word, start, end, subword, token_scores))
        return group(tokens, strategy, self.id2label, strings.join)

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
        if self.options.aggregation_strategy is not None:
            return [TensorSpec(OUTPUT_NAME, "BYTES", [-1])]
        dict_output = self.options.return_raw_logits or self.options.return_probabilities
        specs = [
            TensorSpec(OUTPUT_NAME, "BYTES", [-1, -1])
            if dict_output
            else TensorSpec(OUTPUT_NAME, "INT64", [-1, 1, -1])
        ]
        if self.options.return_offsets_mapping:
            specs.append(TensorSpec(OFFSETS_NAME, "INT64", [-1, -1, 2]))
        return specs


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> TokenClassificationProcessor:
    id2label, _ = read_label_config(model_path)
    return TokenClassificationProcessor(backend, options, id2label)
