"""GET /info: the served model as TEI describes it (its Info schema)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from hf_runtime.dataplane.plane import package_version
from hf_runtime.model import ModelRegistry, TextTokenizer, require_ready
from hf_runtime.protocols.tei.lookup import model_for
from hf_runtime.protocols.tei.schemas import MAX_CLIENT_BATCH_SIZE
from hf_runtime.routes import TEI_INFO
from hf_runtime.types import ModelFacts

# TEI's model types by task: {"embedding": {"pooling"}}, {"classifier" | "reranker":
# {"id2label", "label2id"}}. A task TEI does not serve reports its own name, empty.
_CLASSIFIER_TASKS = {"sequence_classification": "classifier", "rerank": "reranker"}


def model_type(task: str, facts: ModelFacts | None) -> dict[str, Any]:
    if task == "text_embedding":
        pooling = "+".join(facts.pooling) if facts and facts.pooling else "mean"
        return {"embedding": {"pooling": pooling}}
    if task == "sparse_embedding":  # TEI's name for SPLADE pooling
        return {"embedding": {"pooling": "splade"}}
    kind = _CLASSIFIER_TASKS.get(task)
    if kind is None:
        return {task: {}}
    labels = dict(facts.labels) if facts and facts.labels else {0: "LABEL_0"}
    id2label = {str(index): label for index, label in sorted(labels.items())}
    return {kind: {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}}


def info(registry: ModelRegistry, requested: str | None) -> dict[str, Any]:
    model = model_for(registry, requested)
    require_ready(model)
    metadata = model.metadata()
    facts = metadata.facts
    tokenizer = model.capability(TextTokenizer)
    queue = facts.max_queue_size if facts else MAX_CLIENT_BATCH_SIZE
    return {
        "model_id": facts.source if facts else model.name,
        "model_sha": facts.revision if facts else None,
        "model_dtype": facts.dtype if facts else "auto",
        "model_type": model_type(model.task, facts),
        "max_concurrent_requests": queue,
        "max_input_length": tokenizer.max_model_len if tokenizer else 0,
        "max_batch_tokens": facts.max_batch_tokens if facts else 0,
        "max_batch_requests": None,
        "max_client_batch_size": min(MAX_CLIENT_BATCH_SIZE, queue),
        "auto_truncate": facts.auto_truncate if facts else True,
        "tokenization_workers": 1,
        "version": package_version(),
        "sha": None,
        "docker_label": None,
        # Ours: the name requests use, its task, and which backend runs it.
        "model_name": model.name,
        "task": model.task,
        "backend": model.backend,
    }


def info_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()

    async def info_route(
        model: str | None = Query(None, description="The model, where several are served"),
    ) -> JSONResponse:
        return JSONResponse(info(registry, model))

    router.add_api_route(
        TEI_INFO.path,
        info_route,
        methods=["GET"],
        name="info",
        summary="The served model: its id, revision, dtype, type and limits",
    )
    return router
