"""Rerank on vLLM's pooling runner equals the huggingface backend: the tiny cross-encoder's
pairs (token types included) and MiniLM's cosine scores, to 1e-5."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.model import Predictor, Scorer
from hf_runtime.tasks.registry import Task
from tests.backends.vllm.conftest import LoopRunner, load_hf, load_vllm, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
]


@pytest.fixture(scope="module")
def rerankers(run: LoopRunner, tiny_models: dict[str, Path]) -> Iterator[tuple[Any, Any]]:
    folder = tiny_models["bert-cross-encoder"]
    ours, theirs = load_vllm(run, folder, Task.rerank), load_hf(run, folder, Task.rerank)
    yield ours, theirs
    run(ours.aclose())
    run(theirs.aclose())


def test_cross_encoder_scores_equal_huggingface(
    rerankers: tuple[Any, Any], run: LoopRunner
) -> None:
    ours, theirs = rerankers
    assert ours.backend == "vllm" and ours.capability(Scorer) is ours
    assert ours.capability(Predictor) is None
    for text_1, text_2 in [([QUERY], DOCUMENTS), (["what is paris", "hello"], DOCUMENTS[:2])]:
        mine, reference = run(ours.score(text_1, text_2)), run(theirs.score(text_1, text_2))
        np.testing.assert_allclose(mine.scores, reference.scores, atol=1e-5, rtol=0)
        assert mine.prompt_tokens == reference.prompt_tokens
    # Equality means the token types reached vLLM's model: they move this model's logits by
    # whole units (tests/runtime/test_rerank_model.py checks that).


def test_minilm_cosine_equals_huggingface(minilm: tuple[Any, Any], run: LoopRunner) -> None:
    ours, theirs = minilm  # conftest.py's, shared with test_pooling.py
    mine, reference = run(ours.score([QUERY], DOCUMENTS)), run(theirs.score([QUERY], DOCUMENTS))
    np.testing.assert_allclose(mine.scores, reference.scores, atol=1e-5, rtol=0)
    assert int(np.argmax(mine.scores)) == 1
