"""Text embeddings: pooled last hidden states, L2-normalised.

Pooling follows the model's sentence-transformers config (`modules.json` ->
`<Pooling path>/config.json`, or `1_Pooling/config.json`): cls / mean / max / mean_sqrt_len /
weightedmean / lasttoken, concatenated when several are on. Without one it mean-pools, as
KServe always does. V1 per text: the vector (list of float); V2: FP64 [n, dim] (KServe's
datatype). `embed` serves OpenAI: token-id inputs and `dimensions` (truncate + renormalise);
`cosine_scores` the rerank and score routes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import POOLING_MODES, EncoderBackend, Encoding, ForwardSpec
from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    ProcessorOptions,
    kserve_output_tensor,
    too_long,
)
from hf_runtime.tasks.registry import Task
from hf_runtime.types import EmbeddingResult, Prediction, TensorSpec

logger = logging.getLogger("hf_runtime")

DEFAULT_POOLING = ("mean",)
# sentence-transformers' Pooling flags, in the order it concatenates them. The modes' formulas
# are the backends' (`hf_runtime.backends.pooling`): pooling runs where the hidden states are.
_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_POOLING_NAMES = frozenset(POOLING_MODES)


def _pooling_config_path(model_path: Path) -> Path | None:
    modules_file = model_path / "modules.json"
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text())
        except json.JSONDecodeError:
            logger.warning("%s is not valid JSON; ignoring it", modules_file)
            modules = []
        for module in modules if isinstance(modules, list) else []:
            kind = str(module.get("type", "")) if isinstance(module, dict) else ""
            if kind.endswith(".Dense"):
                logger.warning("%s has a Dense module, which is not applied", modules_file)
            if kind.endswith(".Pooling"):
                return model_path / str(module.get("path", "")) / "config.json"
    fallback = model_path / "1_Pooling" / "config.json"
    return fallback if fallback.is_file() else None


def read_pooling_modes(model_path: Path) -> tuple[str, ...]:
    """The pooling modes a sentence-transformers checkpoint declares; mean when none."""
    path = _pooling_config_path(Path(model_path))
    if path is None or not path.is_file():
        return DEFAULT_POOLING
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError:
        logger.warning("%s is not valid JSON; mean pooling", path)
        return DEFAULT_POOLING
    if isinstance(config.get("pooling_mode"), str):  # the constructor's shorthand form
        name = config["pooling_mode"].replace("_tokens", "").replace("_token", "")
        if name in _POOLING_NAMES:
            return (name,)
    modes = tuple(name for flag, name in _POOLING_FLAGS if config.get(flag))
    return modes or DEFAULT_POOLING


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """torch.nn.functional.normalize(p=2): divide by max(norm, 1e-12), in float32."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = np.float32(np.sqrt(np.sum(vector * vector, dtype=np.float32)))
    return vector / max(norm, np.float32(1e-12))


class TextEmbeddingProcessor(EncoderTaskProcessor):
    task = Task.text_embedding

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        pooling: Sequence[str] = DEFAULT_POOLING,
    ) -> None:
        super().__init__(backend, options)
        unknown = [mode for mode in pooling if mode not in _POOLING_NAMES]
        if unknown or not pooling:
            raise ValueError(f"unknown pooling mode(s) {unknown}; known: {sorted(_POOLING_NAMES)}")
        self.pooling = tuple(pooling)

    @property
    def forward_spec(self) -> ForwardSpec:
        return ForwardSpec(pooling=self.pooling)

    @property
    def dimension(self) -> int:
        return self.backend.hidden_size * len(self.pooling)

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        predictions = [l2_normalize(vector).tolist() for vector in outputs]
        return Prediction(predictions, [kserve_output_tensor(predictions)])

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(OUTPUT_NAME, "FP64", [-1, self.dimension])]

    # ------------------------------------------------------------------ OpenAI embeddings

    def decode_embedding_inputs(
        self, inputs: Any, *, auto_truncate: bool = True
    ) -> list[str] | list[list[int]]:
        """OpenAI `input`: a string, a list of strings, a token list or a list of token lists.

        Returns the texts, or the token lists (validated against the vocabulary and length).
        Token lists are never cut: one over the maximum length is InvalidInput, or TooLarge
        when the model is configured with `auto_truncate: false` (as its texts would be).
        """
        if isinstance(inputs, str):
            return [inputs]
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InvalidInput(
                "input must be a non-empty string, list of strings or list of token ids",
                param="input",
            )
        if all(isinstance(x, str) for x in inputs):
            return list(inputs)
        if all(_is_token_id(x) for x in inputs):
            return [self._checked_ids(inputs, 0, auto_truncate)]
        if all(isinstance(x, (list, tuple)) for x in inputs):
            return [self._checked_ids(ids, i, auto_truncate) for i, ids in enumerate(inputs)]
        raise InvalidInput(
            "input must be all strings or all token-id lists, not a mix", param="input"
        )

    def _checked_ids(self, ids: Sequence[Any], index: int, auto_truncate: bool) -> list[int]:
        if not ids:
            raise InvalidInput(f"input {index} is an empty token list", param="input")
        vocab = self.backend.vocab_size
        for token in ids:
            if not _is_token_id(token) or not 0 <= token < vocab:
                raise InvalidInput(
                    f"input {index}: {token!r} is not a token id of this model "
                    f"(integers 0..{vocab - 1})",
                    param="input",
                )
        if len(ids) > self.backend.max_length:
            if not auto_truncate:
                raise too_long(index, len(ids), self.backend.max_length, "input")
            raise InvalidInput(
                f"input {index} has {len(ids)} tokens; this model takes at most "
                f"{self.backend.max_length}",
                param="input",
            )
        return [int(t) for t in ids]

    def check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is None:
            return
        if not _is_token_id(dimensions) or not 1 <= dimensions <= self.dimension:
            raise InvalidInput(
                f"dimensions must be an integer from 1 to {self.dimension} (this model's "
                f"embedding size), got {dimensions!r}",
                param="dimensions",
            )

    def embedding_result(
        self, encodings: Sequence[Encoding], outputs: Sequence[Any], dimensions: int | None
    ) -> EmbeddingResult:
        """Normalised vectors (first `dimensions` values, renormalised) and the token count
        (special tokens included, padding not)."""
        vectors = []
        for vector in outputs:
            values = np.asarray(vector, dtype=np.float32)
            if dimensions is not None:
                values = values[:dimensions]
            vectors.append(l2_normalize(values).tolist())
        return EmbeddingResult(vectors, prompt_tokens=sum(len(e) for e in encodings))


def cosine_scores(
    first: Sequence[Sequence[float]], second: Sequence[Sequence[float]]
) -> list[float]:
    """Score (rerank / score routes) of each vector of `second` against `first[0]` (one
    vector) or the vector at the same index: the cosine similarity of the normalised
    embeddings, i.e. their dot product, summed in float64 as a client would from the
    embeddings route's values."""
    left = np.asarray(first, dtype=np.float64)
    right = np.asarray(second, dtype=np.float64)
    return [float(value) for value in np.sum(left * right, axis=1)]


def _is_token_id(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> TextEmbeddingProcessor:
    return TextEmbeddingProcessor(backend, options, read_pooling_modes(model_path))
