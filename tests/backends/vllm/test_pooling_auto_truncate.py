"""auto_truncate on vLLM's pooling runner: false refuses long inputs as the huggingface backend
does (the text never reaches the engine); true keeps KServe's truncation."""

from __future__ import annotations

from typing import Any

import pytest

from hf_runtime.errors import TooLarge
from tests.backends.vllm.conftest import CLASSIFIER_LIMIT, LoopRunner, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

LIMIT = CLASSIFIER_LIMIT
LONG = "the quick brown fox jumps over the lazy dog " * 3  # 29 tokens with [CLS]/[SEP]


@pytest.fixture(scope="module")
def strict(classifier: Any) -> Any:
    """conftest.py's shared classifier: auto_truncate false, LIMIT tokens."""
    assert classifier.config.auto_truncate is False
    return classifier


def test_backend_tokenizes_without_truncation_on_request(strict: Any) -> None:
    (full,) = strict.encoder.tokenize([LONG], truncate=False)
    (cut,) = strict.encoder.tokenize([LONG])
    assert len(full) == 29 and len(cut) == strict.encoder.max_length == LIMIT


def test_long_input_is_refused_before_the_engine(strict: Any, run: LoopRunner) -> None:
    with pytest.raises(TooLarge, match=f"instance 1 has 29 tokens.*maximum of {LIMIT}"):
        run(strict.predict(["hello world", LONG]))
    assert len(run(strict.predict(["hello world"])).predictions) == 1
