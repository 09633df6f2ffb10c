"""Rerank (Jina / Cohere, as vLLM serves it) and score (vLLM) bodies.

Requests: pydantic shapes (types only; a missing `query` or a non-string document is a 400
naming the field) plus `check()` for the rules that read like the peers' messages. Responses
are declared for the OpenAPI documents; the handlers build them as plain dicts.
"""

from __future__ import annotations

from pydantic import BaseModel

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.openai.schemas import OpenAIRequest


def check_count(count: int, max_pairs: int, param: str, model: str) -> None:
    """More pairs than the model queues at once could never run: a client error, not a 429."""
    if count > max_pairs:
        raise InvalidInput(
            f"this request has {count} {param}; model {model} takes at most {max_pairs} per "
            "request (batching.max_queue_size): split it",
            param=param,
        )


class RerankRequest(OpenAIRequest):
    """`{"model", "query", "documents", "top_n"?, "return_documents"?}`. Cohere's and Jina's
    other fields are accepted and ignored (logged)."""

    query: str
    documents: list[str]
    top_n: int | None = None  # None: every document, ranked
    return_documents: bool | None = True  # vLLM and Jina return them by default

    def check(self) -> None:
        if not self.documents:
            raise InvalidInput("documents must not be empty: give at least one", param="documents")
        if self.top_n is not None and self.top_n < 1:
            raise InvalidInput(f"top_n must be at least 1, got {self.top_n}", param="top_n")


class ScoreRequest(OpenAIRequest):
    """`{"model", "text_1", "text_2"}`: each a text or a list of texts, paired 1:1, 1:N
    (one text_1 against every text_2) or N:N (index by index)."""

    text_1: str | list[str]
    text_2: str | list[str]

    def texts(self) -> tuple[list[str], list[str]]:
        first = [self.text_1] if isinstance(self.text_1, str) else list(self.text_1)
        second = [self.text_2] if isinstance(self.text_2, str) else list(self.text_2)
        for name, texts in (("text_1", first), ("text_2", second)):
            if not texts:
                raise InvalidInput(f"{name} must not be an empty list", param=name)
        if len(first) > 1 and len(first) != len(second):
            raise InvalidInput(
                f"text_1 has {len(first)} texts and text_2 {len(second)}: pair them 1:1, 1:N "
                "(one text_1) or N:N (as many of each)",
                param="text_2",
            )
        return first, second


# ---------------------------------------------------------------- responses (documented)


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None  # absent with return_documents: false


class ScoringUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    """Results sorted by relevance_score, highest first (ties keep the documents' order)."""

    id: str
    model: str
    usage: ScoringUsage
    results: list[RerankResult]


class ScoreData(BaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: ScoringUsage
