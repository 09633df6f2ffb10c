"""The fake models' Pooler capability (vLLM's /pooling and /classify).

A fake embedding model pools its `fake_embedding` vectors (those /v1/embeddings returns); a
fake classifier its `fake_probabilities` (those KServe V1 returns with probabilities), labelled
NEGATIVE / POSITIVE; a fake cross-encoder one score per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hf_runtime.errors import HFRuntimeError, InvalidInput
from hf_runtime.types import PooledResult, PoolingOptions, PoolingTask

FAKE_MAX_INPUT_TOKENS = 64
FAKE_LABELS = ("NEGATIVE", "POSITIVE")


class FakePooler:
    def __init__(self, owner: Any, task: str) -> None:
        self._owner = owner  # a FakeServedModel: readiness and fail_with are its
        self._task = task

    @property
    def pooling_task(self) -> PoolingTask:
        return "embed" if self._task == "text_embedding" else "classify"

    @property
    def max_input_tokens(self) -> int:
        return FAKE_MAX_INPUT_TOKENS

    async def pool(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        options: PoolingOptions | None = None,
    ) -> PooledResult:
        from tests.fakes import fake_embedding, fake_probabilities

        self._owner._check_ready()
        failure: HFRuntimeError | None = self._owner.fail_with
        if failure is not None:
            raise failure
        options = options or PoolingOptions()
        limit = options.truncate_tokens
        if limit is not None and not (limit == -1 or 1 <= limit <= FAKE_MAX_INPUT_TOKENS):
            raise InvalidInput("bad truncate_prompt_tokens", param="truncate_prompt_tokens")
        batch: list[Any] = [inputs] if isinstance(inputs, str) else list(inputs)
        if batch and all(isinstance(x, int) for x in batch):
            batch = [batch]
        if not batch:
            raise InvalidInput("input must not be empty", param="input")
        texts = [x if isinstance(x, str) else "".join(chr(65 + t % 26) for t in x) for x in batch]
        tokens = sum(len(t) + 2 for t in texts)
        if self.pooling_task == "embed":
            vectors = [fake_embedding([ord(c) for c in text]) for text in texts]
            return PooledResult(vectors, tokens)
        rows = [list(fake_probabilities(text).values()) for text in texts]
        if self._task == "rerank":
            rows = [[row[1]] for row in rows]
        labels = [FAKE_LABELS[max(range(len(r)), key=r.__getitem__)] for r in rows]
        return PooledResult(rows, tokens, labels)
