"""Sparse (SPLADE) embeddings: a sentence-transformers SparseEncoder checkpoint's vectors.

The backend runs the masked-LM head and pools its vocabulary logits per text as the
checkpoint's SpladePooling says (`ForwardSpec.sparse`: log1p(relu(logits)), max or sum over the
real tokens; `hf_runtime.tasks.sparse_checkpoint` reads the settings). Prompts are prepended as
`SparseEncoder.encode` does (the default one unless a request names another; SpladePooling
pools the prompt's tokens too); `max_active_dims` keeps the largest values of each vector. The
values are sentence-transformers' own: never normalised.

Served as (one per text):
  - SparseEmbedder (TEI's /embed_sparse, OpenAI `encoding_format: "sparse"`): the non-zero
    entries, by ascending index (a token id of the vocabulary);
  - KServe V1: `{"indices": [...], "values": [...]}`;
  - KServe V2: two outputs, `indices` INT64 [n, k] and `values` FP32 [n, k], k the request's
    largest count of non-zero entries, shorter rows padded with index -1 and value 0;
  - Embedder (OpenAI float/base64, TEI's /embed): the vector written out densely, one value
    per vocabulary entry, as vLLM and TEI serve a SPLADE model there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding, ForwardSpec
from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.base import ProcessorOptions
from hf_runtime.tasks.embedding_base import EmbeddingProcessor
from hf_runtime.tasks.registry import Task
from hf_runtime.tasks.sparse_checkpoint import SparseEncoderSettings, read_sparse_settings
from hf_runtime.tasks.text_embedding import l2_normalize
from hf_runtime.types import (
    OutputTensor,
    Prediction,
    SparseEmbeddingResult,
    SparseVector,
    TensorSpec,
)

INDICES_OUTPUT = "indices"
VALUES_OUTPUT = "values"
PAD_INDEX = -1  # V2: where a row has fewer non-zero entries than the request's longest


class SparseEmbeddingProcessor(EmbeddingProcessor):
    task = Task.sparse_embedding

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        settings: SparseEncoderSettings | None = None,
    ) -> None:
        """ConfigError for settings the model or the backend cannot run."""
        settings = settings or SparseEncoderSettings()
        super().__init__(backend, options, settings.prompts, settings.default_prompt_name)
        self.max_active_dims = settings.max_active_dims
        self._spec = ForwardSpec(sparse=settings.pooling)
        backend.prepare(self._spec)

    @property
    def forward_spec(self) -> ForwardSpec:
        return self._spec

    # ------------------------------------------------------------------ vectors

    def dense_vectors(self, outputs: Sequence[Any]) -> list[np.ndarray]:
        """The pooled vocabulary-sized vectors, only the `max_active_dims` largest values of
        each kept (sentence-transformers' select_max_active_dims; all values are >= 0)."""
        vectors = [np.asarray(vector, dtype=np.float32) for vector in outputs]
        limit = self.max_active_dims
        if limit is None:
            return vectors
        kept = []
        for vector in vectors:
            if limit < len(vector):
                vector = vector.copy()
                vector[np.argpartition(vector, len(vector) - limit)[: len(vector) - limit]] = 0
            kept.append(vector)
        return kept

    def sparse_vectors(self, outputs: Sequence[Any]) -> list[SparseVector]:
        vectors = []
        for vector in self.dense_vectors(outputs):
            indices = np.flatnonzero(vector)
            vectors.append(SparseVector(indices.tolist(), vector[indices].tolist()))
        return vectors

    def sparse_result(
        self, encodings: Sequence[Encoding], outputs: Sequence[Any]
    ) -> SparseEmbeddingResult:
        dimension = len(outputs[0]) if outputs else self.backend.vocab_size
        return SparseEmbeddingResult(
            self.sparse_vectors(outputs), dimension, sum(len(e) for e in encodings)
        )

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        vectors = self.sparse_vectors(outputs)
        predictions = [{"indices": v.indices, "values": v.values} for v in vectors]
        return Prediction(predictions, padded_tensors(vectors), v1_outputs=False)

    def output_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(INDICES_OUTPUT, "INT64", [-1, -1]),
            TensorSpec(VALUES_OUTPUT, "FP32", [-1, -1]),
        ]

    # ------------------------------------------------------------------ dense (Embedder)

    def check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is not None:
            raise InvalidInput(
                "dimensions does not apply to a sparse embedding model: its vectors have one "
                "value per vocabulary entry",
                param="dimensions",
            )

    def vectors(
        self, outputs: Sequence[Any], dimensions: int | None, normalize: bool | None = None
    ) -> list[np.ndarray]:
        """The vectors written out densely (vocabulary-sized), not normalised unless asked
        (`dimensions` is refused by `check_dimensions`)."""
        vectors = self.dense_vectors(outputs)
        if normalize:
            vectors = [l2_normalize(vector) for vector in vectors]
        return vectors


def padded_tensors(vectors: Sequence[SparseVector]) -> list[OutputTensor]:
    """V2's `indices` INT64 [n, k] and `values` FP32 [n, k]: each row's entries, then padding
    (index -1, value 0) up to k, the largest count of non-zero entries among the rows."""
    width = max((len(v.indices) for v in vectors), default=0)
    indices: list[int] = []
    values: list[float] = []
    for vector in vectors:
        pad = width - len(vector.indices)
        indices.extend(vector.indices + [PAD_INDEX] * pad)
        values.extend(vector.values + [0.0] * pad)
    shape = [len(vectors), width]
    return [
        OutputTensor(INDICES_OUTPUT, "INT64", shape, indices),
        OutputTensor(VALUES_OUTPUT, "FP32", list(shape), values),
    ]


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> SparseEmbeddingProcessor:
    """The processor for the checkpoint folder's SparseEncoder settings."""
    return SparseEmbeddingProcessor(backend, options, read_sparse_settings(Path(model_path)))
