"""Which tasks the vLLM backend serves, and how (no vLLM import: checked before loading)."""

from __future__ import annotations

from hf_runtime.tasks.names import Task

# Encoder task -> the vLLM pooling task whose raw output our task processors need.
POOLING_TASKS: dict[Task, str] = {
    Task.text_embedding: "token_embed",  # per-token hidden states, pooled by us
    Task.sequence_classification: "classify",  # the head's logits
    Task.rerank: "classify",  # a cross-encoder's one logit per pair (its token types passed on)
}
UNSUPPORTED_REASONS: dict[Task, str] = {
    Task.token_classification: (
        "KServe's token_classification labels every padded position of a request, which "
        "vLLM's pooling runner does not compute"
    ),
    Task.fill_mask: "vLLM's pooling runner returns no masked-LM logits",
}


def unsupported_reason(task: Task) -> str | None:
    """Why the vLLM backend cannot serve `task`, or None when it can."""
    if task.is_generative or task in POOLING_TASKS:
        return None
    return UNSUPPORTED_REASONS.get(task, f"{task.value} has no vLLM pooling equivalent")
