"""The fake models' Scorer capability (rerank / score routes, V1/V2 text pairs).

A fake cross-encoder scores a pair by the words the document shares with the query
(`fake_relevance`); a fake embedding model by the cosine of its own fake embeddings, so a test
can compare with what its embeddings route returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from hf_runtime.errors import HFRuntimeError
from hf_runtime.types import ScoreResult

FAKE_MAX_PAIRS = 16  # the fakes' batching.max_queue_size


def fake_relevance(query: str, document: str) -> float:
    """In (0, 1): higher the more of the query's words the document has (ties: shorter)."""
    words = set(query.lower().split())
    shared = len(words & set(document.lower().split()))
    return 1 / (1 + math.exp(-(shared - 0.5 - len(document) / 1000)))


class FakeScorer:
    """`cross=True`: a cross-encoder (fake_relevance; pair tokens = characters + 3).
    Otherwise cosine of `embed(text)` vectors (tokens = characters + 2 per text embedded)."""

    def __init__(
        self,
        owner: object,
        embed: Callable[[str], list[float]],
        *,
        cross: bool,
        max_pairs: int = FAKE_MAX_PAIRS,
    ) -> None:
        self._owner = owner  # a FakeServedModel: readiness and fail_with are its
        self._embed = embed
        self.cross = cross
        self.max_pairs = max_pairs
        self.calls: list[tuple[list[str], list[str]]] = []

    async def score(
        self, text_1: Sequence[str], text_2: Sequence[str], *, truncation: Any = None
    ) -> ScoreResult:
        self._owner._check_ready()  # type: ignore[attr-defined]
        failure: HFRuntimeError | None = self._owner.fail_with  # type: ignore[attr-defined]
        if failure is not None:
            raise failure
        first, second = list(text_1), list(text_2)
        self.calls.append((first, second))
        queries = first * len(second) if len(first) == 1 else first
        if self.cross:
            scores = [fake_relevance(q, d) for q, d in zip(queries, second, strict=True)]
            tokens = sum(len(q) + len(d) + 3 for q, d in zip(queries, second, strict=True))
            return ScoreResult(scores, tokens)
        scores = [
            sum(a * b for a, b in zip(self._embed(q), self._embed(d), strict=True))
            for q, d in zip(queries, second, strict=True)
        ]
        return ScoreResult(scores, sum(len(t) + 2 for t in first + second))
