"""Fill-mask, with KServe's exact output shapes.

V1 per text: the tokens predicted (argmax) at every mask position, decoded together into ONE
string; with return_probabilities, per mask a list over the whole vocabulary of single-key
dicts token id -> probability as a 4-dp *string*; with return_raw_logits token id -> logit.
V2: BYTES [n], or BYTES [n, masks, vocab] holding `str(dict)`; texts with different mask
counts cannot form that tensor (KServe: 500; here: 400 on V2 only).

Opt-in top_k (per model or per request), as transformers' fill-mask pipeline: per text one
list per mask of the k likeliest {"score", "token", "token_str"} (softmax over the
vocabulary). V2: BYTES [n] of JSON strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding, ForwardItem
from hf_runtime.errors import ConfigError, InvalidInput
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    ProcessorOptions,
    json_output_tensor,
    kserve_output_tensor,
    softmax,
)
from hf_runtime.tasks.registry import Task
from hf_runtime.types import Prediction, TensorSpec


class FillMaskProcessor(EncoderTaskProcessor):
    task = Task.fill_mask

    def __init__(self, backend: EncoderBackend, options: ProcessorOptions) -> None:
        super().__init__(backend, options)
        if backend.mask_token_id is None:
            raise ConfigError("fill_mask needs a tokenizer with a mask token; this one has none")
        self.mask_token_id: int = backend.mask_token_id
        self.mask_token = backend.mask_token or ""

    def forward_items(
        self, encodings: Sequence[Encoding], *, pad_to_request_max: bool = False
    ) -> list[ForwardItem]:
        items = super().forward_items(encodings, pad_to_request_max=pad_to_request_max)
        with_positions = []
        for index, item in enumerate(items):
            ids = item.encoding.input_ids
            positions = tuple(p for p, token in enumerate(ids) if token == self.mask_token_id)
            if not positions:
                raise InvalidInput(
                    f"instance {index} has no {self.mask_token} token: fill-mask predicts the "
                    f"token at each {self.mask_token} (texts are cut at {self.backend.max_length}"
                    " tokens, which can drop it)",
                    param="instances",
                )
            with_positions.append(
                ForwardItem(item.encoding, min_length=item.min_length, positions=positions)
            )
        return with_positions

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        options = options or self.options
        if options.top_k is not None:
            k = options.top_k
            candidates = [self._top_k(np.asarray(row, dtype=np.float32), k) for row in outputs]
            return Prediction(candidates, [json_output_tensor(candidates)])
        predictions = [self._one(np.asarray(logits, dtype=np.float32)) for logits in outputs]
        tensor = kserve_output_tensor(
            predictions,
            ragged_message="the texts have different numbers of mask tokens; send them in "
            "separate requests (or use V1)",
        )
        return Prediction(predictions, [tensor])

    def _one(self, logits: np.ndarray) -> str | list[list[dict[int, Any]]]:
        """`logits`: [masks, vocab]."""
        if self.options.return_raw_logits:
            return [[{t: float(v)} for t, v in enumerate(row)] for row in logits]
        if self.options.return_probabilities:
            return [[{t: f"{float(p):.4f}"} for t, p in enumerate(row)] for row in softmax(logits)]
        return self.backend.decode(np.argmax(logits, axis=-1).tolist())

    def _top_k(self, logits: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """`logits`: [masks, vocab] -> per mask the k likeliest tokens, best first."""
        per_mask = []
        for probs in softmax(logits):
            best = np.argsort(-probs, kind="stable")[:k]
            per_mask.append(
                [
                    {
                        "score": float(probs[t]),
                        "token": int(t),
                        "token_str": self.backend.decode([int(t)]),
                    }
                    for t in best
                ]
            )
        return per_mask

    def output_specs(self) -> list[TensorSpec]:
        if self.options.top_k is not None:
            return [TensorSpec(OUTPUT_NAME, "BYTES", [-1])]
        if self.options.return_raw_logits or self.options.return_probabilities:
            return [TensorSpec(OUTPUT_NAME, "BYTES", [-1, -1, self.backend.vocab_size])]
        return [TensorSpec(OUTPUT_NAME, "BYTES", [-1])]


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> FillMaskProcessor:
    return FillMaskProcessor(backend, options)
