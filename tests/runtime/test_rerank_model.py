"""Scoring on real models (huggingface backend): a tiny cross-encoder against transformers
computed here, pair by pair, and MiniLM's cosine against its own embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.config import BatchingConfig
from hf_runtime.errors import TooLarge
from hf_runtime.model import Embedder, Predictor, Scorer
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.loading import load_encoder_model

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "I love this movie",
]


async def load(path: Path, task: Task, **flags: Any) -> EncoderModel:
    return await load_encoder_model(model_config(path, **flags), source_for(path), task)


@pytest.fixture
async def reranker(tiny_models: dict[str, Path]) -> AsyncIterator[EncoderModel]:
    model = await load(tiny_models["bert-cross-encoder"], Task.rerank, model_name="ce")
    yield model
    await model.aclose()


def reference_logits(path: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    """model(**tokenizer(query, doc)).logits, one pair at a time (no padding at all)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    with torch.no_grad():
        return np.array(
            [model(**tokenizer(q, d, return_tensors="pt")).logits[0, 0].item() for q, d in pairs]
        )


def test_token_types_matter_to_the_tiny_cross_encoder(tiny_models: dict[str, Path]) -> None:
    """What makes backend comparisons a real check that the document's token types arrive."""
    import torch
    import transformers

    path = tiny_models["bert-cross-encoder"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    inputs = tokenizer(QUERY, DOCUMENTS[1], return_tensors="pt")
    with torch.no_grad():
        typed = model(**inputs).logits.item()
        untyped = model(inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.item()
    assert abs(typed - untyped) > 0.5


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-values))


async def test_cross_encoder_scores_equal_transformers(
    reranker: EncoderModel, tiny_models: dict[str, Path]
) -> None:
    assert reranker.capability(Scorer) is reranker
    assert reranker.capability(Predictor) is None and reranker.capability(Embedder) is None
    result = await reranker.score([QUERY], DOCUMENTS)  # 1:N
    pairs = [(QUERY, d) for d in DOCUMENTS]
    expected = sigmoid(reference_logits(tiny_models["bert-cross-encoder"], pairs))
    np.testing.assert_allclose(result.scores, expected, atol=1e-5, rtol=0)
    assert len(set(np.round(result.scores, 3))) == len(DOCUMENTS)  # spread, not ties
    encodings = reranker.encoder.tokenize_pairs([QUERY] * 4, DOCUMENTS)
    assert result.prompt_tokens == sum(len(e) for e in encodings)
    queries = ["what is paris", "hello world"]
    pairwise = await reranker.score(queries, DOCUMENTS[:2])  # N:N
    expected = sigmoid(reference_logits(tiny_models["bert-cross-encoder"], list(zip(
        queries, DOCUMENTS[:2], strict=True))))  # fmt: skip
    np.testing.assert_allclose(pairwise.scores, expected, atol=1e-5, rtol=0)


async def test_raw_scores_are_the_logits(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["bert-cross-encoder"]
    model = await load(path, Task.rerank, rerank_raw_scores=True)
    try:
        result = await model.score([QUERY], DOCUMENTS[:2])
    finally:
        await model.aclose()
    expected = reference_logits(path, [(QUERY, d) for d in DOCUMENTS[:2]])
    np.testing.assert_allclose(result.scores, expected, atol=1e-5, rtol=0)


async def test_metadata_declares_pair_inputs(reranker: EncoderModel) -> None:
    metadata = reranker.metadata()
    assert [(s.name, s.datatype) for s in metadata.inputs] == [
        ("text", "BYTES"),
        ("text_pair", "BYTES"),
    ]
    assert [(s.name, s.datatype, s.shape) for s in metadata.outputs] == [("output-0", "FP64", [-1])]


async def test_pairs_batch_across_requests(reranker: EncoderModel) -> None:
    """Concurrent one-pair requests share forward passes and get their solo answers."""
    solo = [(await reranker.score([QUERY], [d])).scores[0] for d in DOCUMENTS]
    batches_before = reranker.stats()["batches"]
    together = await asyncio.gather(*(reranker.score([QUERY], [d]) for d in DOCUMENTS * 4))
    np.testing.assert_allclose(
        [r.scores[0] for r in together], solo * 4, atol=1e-5, rtol=0
    )  # padding to a longer pair in the same batch changes nothing
    assert reranker.stats()["batches"] - batches_before < len(together)


async def test_long_pairs_without_auto_truncate_are_too_large(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["bert-cross-encoder"]
    model = await load(path, Task.rerank, auto_truncate=False, max_model_len=16)
    cutting = await load(path, Task.rerank, max_model_len=16)
    long_document = "paris is the capital of france and a very big city " * 3
    try:
        with pytest.raises(TooLarge, match="pair 1 has .* tokens"):
            await model.score([QUERY], ["paris", long_document])
        assert len((await model.score([QUERY], ["paris"])).scores) == 1
        assert len((await cutting.score([QUERY], [long_document])).scores) == 1
    finally:
        await model.aclose()
        await cutting.aclose()


async def test_queue_size_caps_a_request(tiny_models: dict[str, Path]) -> None:
    from hf_runtime.errors import InvalidInput

    batching = BatchingConfig(max_queue_size=3)
    model = await load(tiny_models["bert-cross-encoder"], Task.rerank, batching=batching)
    try:
        assert model.max_pairs == 3
        with pytest.raises(InvalidInput, match="at most 3"):
            await model.score([QUERY], DOCUMENTS)
    finally:
        await model.aclose()


async def test_minilm_reranks_by_the_cosine_of_its_embeddings(minilm_dir: Path) -> None:
    model = await load(minilm_dir, Task.text_embedding)
    try:
        assert model.capability(Scorer) is model and model.capability(Predictor) is model
        result = await model.score([QUERY], DOCUMENTS)
        vectors = np.array((await model.embed([QUERY, *DOCUMENTS])).embeddings, np.float64)
        np.testing.assert_allclose(result.scores, vectors[1:] @ vectors[0], atol=1e-6, rtol=0)
        assert int(np.argmax(result.scores)) == 1  # Paris first
        assert result.prompt_tokens == (await model.embed([QUERY, *DOCUMENTS])).prompt_tokens
        pairwise = await model.score(DOCUMENTS[:2], DOCUMENTS[:2])
        np.testing.assert_allclose(pairwise.scores, [1.0, 1.0], atol=1e-5)
    finally:
        await model.aclose()
