"""Entity grouping for token classification, as transformers' TokenClassificationPipeline.

`aggregation_strategy` none/simple/first/average/max reproduces the pipeline's
gather_pre_entities -> aggregate (aggregate_words, aggregate_word) -> group_entities ->
ignore "O", in numpy. Only real tokens take part: special tokens and pad positions are
dropped, as the pipeline drops them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

WORD_STRATEGIES = ("first", "average", "max")
IGNORE_LABELS = ("O",)


@dataclass(frozen=True)
class TokenInfo:
    """What grouping needs of one real token (the pipeline's pre-entity)."""

    index: int
    word: str
    start: int | None
    end: int | None
    is_subword: bool
    scores: np.ndarray


def pipeline_softmax(logits: np.ndarray) -> np.ndarray:
    """The pipeline's softmax (float32 logits, shifted by the row maximum)."""
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def is_subword(
    text: str, word: str, start: int, end: int, *, word_aware: bool, unknown: bool
) -> bool:
    """The pipeline's rule: a word-aware (continuing-subword-prefix) tokenizer's token is a
    subword when its string is longer than its span; otherwise a token not after a space."""
    if unknown:
        return False
    if word_aware:
        return len(word) != len(text[start:end])
    return start > 0 and " " not in text[start - 1 : start + 1]


def _label(id2label: dict[int, str], index: int) -> str:
    return id2label.get(int(index), str(int(index)))


def group(
    tokens: Sequence[TokenInfo],
    strategy: str,
    id2label: dict[int, str],
    join: Callable[[list[str]], str],
) -> list[dict[str, Any]]:
    """One text's entities; `join` is the tokenizer's convert_tokens_to_string."""
    if strategy in ("none", "simple"):
        entities = []
        for token in tokens:
            best = int(token.scores.argmax())
            entities.append(
                {
                    "entity": _label(id2label, best),
                    "score": float(token.scores[best]),
                    "index": token.index,
                    "word": token.word,
                    "start": token.start,
                    "end": token.end,
                }
            )
    elif strategy in WORD_STRATEGIES:
        entities = _aggregate_words(tokens, strategy, id2label, join)
    else:
        raise ValueError(f"unknown aggregation_strategy {strategy!r}")
    if strategy != "none":
        entities = _group_entities(entities, join)
    return [
        e
        for e in entities
        if e.get("entity") not in IGNORE_LABELS and e.get("entity_group") not in IGNORE_LABELS
    ]


def _aggregate_words(
    tokens: Sequence[TokenInfo],
    strategy: str,
    id2label: dict[int, str],
    join: Callable[[list[str]], str],
) -> list[dict[str, Any]]:
    words: list[list[TokenInfo]] = []
    for token in tokens:
        if words and token.is_subword:
            words[-1].append(token)
        else:
            words.append([token])
    return [_aggregate_word(word, strategy, id2label, join) for word in words]


def _aggregate_word(
    word: list[TokenInfo],
    strategy: str,
    id2label: dict[int, str],
    join: Callable[[list[str]], str],
) -> dict[str, Any]:
    if strategy == "first":
        scores = word[0].scores
    elif strategy == "max":
        scores = max(word, key=lambda token: token.scores.max()).scores
    else:  # average
        scores = np.nanmean(np.stack([token.scores for token in word]), axis=0)
    best = int(scores.argmax())
    return {
        "entity": _label(id2label, best),
        "score": float(scores[best]),
        "word": join([token.word for token in word]),
        "start": word[0].start,
        "end": word[-1].end,
    }


def _tag(entity: str) -> tuple[str, str]:
    if entity.startswith("B-"):
        return "B", entity[2:]
    if entity.startswith("I-"):
        return "I", entity[2:]
    return "I", entity


def _group_entities(
    entities: list[dict[str, Any]], join: Callable[[list[str]], str]
) -> list[dict[str, Any]]:
    groups: list[list[dict[str, Any]]] = []
    for entity in entities:
        if groups:
            bi, tag = _tag(entity["entity"])
            _, last_tag = _tag(groups[-1][-1]["entity"])
            if tag == last_tag and bi != "B":
                groups[-1].append(entity)
                continue
        groups.append([entity])
    return [
        {
            "entity_group": members[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean(np.nanmean([m["score"] for m in members]))),
            "word": join([m["word"] for m in members]),
            "start": members[0]["start"],
            "end": members[-1]["end"],
        }
        for members in groups
    ]
