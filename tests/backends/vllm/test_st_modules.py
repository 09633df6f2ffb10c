"""A sentence-transformers checkpoint with a Dense, Normalize and prompts (its prompt's tokens
not pooled) on vLLM's pooling runner: the vectors equal `SentenceTransformer.encode`'s, as on
the huggingface backend (tests/protocols/test_sentence_transformers_exact.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.registry import Task
from tests.backends.vllm.conftest import LoopRunner, load_vllm, requires_vllm
from tests.st_checkpoints import CHECKPOINTS, build_st_checkpoint

pytestmark = [requires_vllm, pytest.mark.vllm]

NAME = "dense-exclude-prompt-normalize"
TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "a"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_st_checkpoint(tmp_path_factory.mktemp("st") / NAME, CHECKPOINTS[NAME])


@pytest.fixture(scope="module")
def served(run: LoopRunner, checkpoint: Path) -> Iterator[Any]:
    model = load_vllm(run, checkpoint, Task.text_embedding)
    yield model
    run(model.aclose())


def test_vectors_equal_sentence_transformers(
    served: Any, run: LoopRunner, checkpoint: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    from hf_runtime.types import OutputOptions

    reference = SentenceTransformer(str(checkpoint), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    embedded = np.array(run(served.embed(TEXTS)).embeddings)
    predicted = np.array(run(served.predict(TEXTS)).predictions)
    assert embedded.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(embedded, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(predicted, expected, atol=1e-5, rtol=0)
    other = reference.encode(TEXTS, prompt_name="doc", normalize_embeddings=True)
    by_name = run(served.embed(TEXTS, prompt_name="doc")).embeddings
    np.testing.assert_allclose(by_name, other, atol=1e-5, rtol=0)
    v1 = run(served.predict(TEXTS, OutputOptions(prompt_name="doc"))).predictions
    np.testing.assert_allclose(v1, other, atol=1e-5, rtol=0)
    with pytest.raises(InvalidInput, match="prompt_name 'nope'"):
        run(served.embed(TEXTS, prompt_name="nope"))
