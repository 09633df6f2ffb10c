"""auto_truncate on vLLM's pooling runner: false refuses long inputs as the huggingface backend
does (the text never reaches the engine); true keeps KServe's truncation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.errors import TooLarge
from hf_runtime.tasks.registry import Task
from tests.backends.vllm.conftest import LoopRunner, load_vllm, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

LIMIT = 16
LONG = "the quick brown fox jumps over the lazy dog " * 3  # 29 tokens with [CLS]/[SEP]


@pytest.fixture(scope="module")
def strict(run: LoopRunner, tiny_models: dict[str, Path]) -> Iterator[Any]:
    model = load_vllm(
        run,
        tiny_models["bert-seq-cls"],
        Task.sequence_classification,
        max_model_len=LIMIT,
        auto_truncate=False,
    )
    yield model
    run(model.aclose())


def test_backend_tokenizes_without_truncation_on_request(strict: Any) -> None:
    (full,) = strict.encoder.tokenize([LONG], truncate=False)
    (cut,) = strict.encoder.tokenize([LONG])
    assert len(full) == 29 and len(cut) == strict.encoder.max_length == LIMIT


def test_long_input_is_refused_before_the_engine(strict: Any, run: LoopRunner) -> None:
    with pytest.raises(TooLarge, match=f"instance 1 has 29 tokens.*maximum of {LIMIT}"):
        run(strict.predict(["hello world", LONG]))
    assert len(run(strict.predict(["hello world"])).predictions) == 1
