"""POST /predict (a classifier's scores for texts and text pairs) and TEI's /rerank body
(a cross-encoder's scores for query-text pairs), TEI's way: every label sorted by score."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hf_runtime.errors import Unsupported
from hf_runtime.model import Classifier, ModelRegistry
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.protocols.tei.embed import batch_of, check_batch_size, json_response
from hf_runtime.protocols.tei.errors import EmptyBatch
from hf_runtime.protocols.tei.lookup import resolve
from hf_runtime.protocols.tei.schemas import PredictRequest, RerankRequest
from hf_runtime.routes import TEI_PREDICT
from hf_runtime.types import TextPair

CLASSIFIER = "a sequence classification model"
RERANKER = "a re-ranker model"


def descending(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TEI's order: sorted by score ascending (stable), then reversed: the best first, ties
    in reverse input order."""
    ordered = sorted(items, key=lambda item: item["score"])
    ordered.reverse()
    return ordered


def _one(item: Any) -> str | TextPair:
    """A batch element: a text, [text] or [text, text_pair]."""
    if isinstance(item, str):
        return item
    return item[0] if len(item) == 1 else TextPair(item[0], item[1])


def predict_inputs(inputs: Any) -> tuple[list[str | TextPair], bool]:
    """TEI's `PredictInput`: (the texts and pairs, whether it was a batch). A list of two
    strings is one pair, as TEI reads it; any other list is a batch."""
    if isinstance(inputs, str):
        return [inputs], False
    if len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
        return [TextPair(inputs[0], inputs[1])], False
    return [_one(item) for item in batch_of(inputs)], True


async def predict(registry: ModelRegistry, body: PredictRequest) -> Response:
    classifier = resolve(registry, body.model, Classifier, CLASSIFIER)
    inputs, batched = predict_inputs(body.inputs)
    check_batch_size(len(inputs), classifier.max_inputs)
    result = await classifier.classify(
        inputs, raw_scores=body.raw_scores, truncation=body.truncation()
    )
    rows = [
        descending(
            [{"score": s, "label": label} for s, label in zip(row, result.labels, strict=True)]
        )
        for row in result.scores
    ]
    return json_response(rows if batched else rows[0])


async def rerank(registry: ModelRegistry, body: RerankRequest) -> Response:
    """TEI's /rerank: the query paired with each text, scored by a one-label classifier."""
    if not body.texts:
        raise EmptyBatch("`texts` cannot be empty", param="texts")
    classifier = resolve(registry, body.model, Classifier, RERANKER)
    check_batch_size(len(body.texts), classifier.max_inputs)
    pairs = [TextPair(body.query, text) for text in body.texts]
    result = await classifier.classify(
        pairs, raw_scores=body.raw_scores, truncation=body.truncation()
    )
    if len(result.labels) != 1:
        raise_not_reranker(len(result.labels))
    ranks = []
    for index, row in enumerate(result.scores):
        rank: dict[str, Any] = {"index": index, "score": row[0]}
        if body.return_text:
            rank["text"] = body.texts[index]
        ranks.append(rank)
    return json_response(descending(ranks))


def raise_not_reranker(labels: int) -> None:
    raise Unsupported(
        f"model is not a re-ranker model: its head has {labels} labels, a re-ranker one",
        param="model",
    )


def predict_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    async def predict_route(body: PredictRequest, request: Request) -> Response:
        return await cancel_on_disconnect(request, predict(registry, body))

    router.add_api_route(
        TEI_PREDICT.path,
        predict_route,
        methods=["POST"],
        response_model=list[dict[str, Any]] | list[list[dict[str, Any]]],
        name="predict",
        summary="Every label's score for a text, a text pair or a batch, best first",
    )
    return router
