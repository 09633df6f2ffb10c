"""The fake sparse embedding model's capabilities (SparseEmbedder, its dense Embedder view, and
KServe predictions), for protocol-layer tests.

A text's fake sparse vector has one entry per distinct character code modulo FAKE_VOCAB (the
index), valued by how often it occurs; the dense view writes it out over FAKE_VOCAB values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from hf_runtime.errors import HFRuntimeError, InvalidInput, TooLarge, Unsupported
from hf_runtime.tasks.sparse_embedding import padded_tensors
from hf_runtime.types import (
    EmbeddingResult,
    Prediction,
    SparseEmbeddingResult,
    SparseVector,
    TensorSpec,
    Truncation,
)

FAKE_VOCAB = 32
FAKE_MAX_LENGTH = 64  # characters: longer texts are cut, or refused when truncate is False
SPARSE_OUTPUTS = [TensorSpec("indices", "INT64", [-1, -1]), TensorSpec("values", "FP32", [-1, -1])]


def fake_sparse_vector(values: Sequence[int]) -> SparseVector:
    counts = Counter(value % FAKE_VOCAB for value in values)
    indices = sorted(counts)
    return SparseVector(indices, [float(counts[i]) for i in indices])


class FakeSparseEmbedder:
    """`owner` (a FakeServedModel) gives readiness, fail_with and the prompts."""

    def __init__(self, owner: Any, prompts: dict[str, str]) -> None:
        self._owner = owner
        self._prompts = prompts
        self.calls: list[list[Any]] = []

    def _sequences(
        self, inputs: Sequence[Any], prompt_name: str | None, truncation: Truncation | None
    ) -> list[list[int]]:
        self._owner._check_ready()
        fail_with: HFRuntimeError | None = self._owner.fail_with
        if fail_with is not None:
            raise fail_with
        if prompt_name is not None:
            if prompt_name not in self._prompts:
                raise InvalidInput(f"unknown prompt_name {prompt_name!r}", param="prompt_name")
            if not all(isinstance(x, str) for x in inputs):
                raise InvalidInput("prompt_name applies to text inputs", param="prompt_name")
            inputs = [self._prompts[prompt_name] + str(x) for x in inputs]
        sequences = []
        for index, item in enumerate(inputs):
            values = [ord(c) for c in item] if isinstance(item, str) else list(item)
            if len(values) > FAKE_MAX_LENGTH:
                if truncation is not None and truncation.enabled is False:
                    raise TooLarge(f"input {index} is longer than {FAKE_MAX_LENGTH}")
                values = values[:FAKE_MAX_LENGTH]
            sequences.append(values)
        self.calls.append(list(inputs))
        return sequences

    async def embed_sparse(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
    ) -> SparseEmbeddingResult:
        sequences = self._sequences(inputs, prompt_name, truncation)
        return SparseEmbeddingResult(
            [fake_sparse_vector(s) for s in sequences],
            FAKE_VOCAB,
            prompt_tokens=sum(len(s) + 2 for s in sequences),  # + CLS and SEP
        )

    async def embed(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        """The vectors written out densely (never normalised: as the real model unless asked,
        which the fake ignores)."""
        if dimensions is not None:
            raise InvalidInput("dimensions does not apply", param="dimensions")
        result = await self.embed_sparse(inputs, prompt_name, truncation=truncation)
        dense = []
        for vector in result.vectors:
            row = [0.0] * FAKE_VOCAB
            for index, value in zip(vector.indices, vector.values, strict=True):
                row[index] = value
            dense.append(row)
        return EmbeddingResult(dense, result.prompt_tokens)

    async def embed_tokens(self, *args: Any, **kwargs: Any) -> Any:
        raise Unsupported("a sparse embedding model has no per-token embeddings", param="model")

    async def predict(self, instances: Sequence[str]) -> Prediction:
        vectors = (await self.embed_sparse(list(instances))).vectors
        predictions = [{"indices": v.indices, "values": v.values} for v in vectors]
        return Prediction(predictions, padded_tensors(vectors), v1_outputs=False)
