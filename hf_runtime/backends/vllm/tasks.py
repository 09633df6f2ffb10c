"""Which tasks the vLLM backend serves, and how (no vLLM import: checked before loading).

Read from each task's head (hf_runtime.tasks.registry), never from its name: a new encoder
task on a head listed here runs on vLLM with no change to this backend.
"""

from __future__ import annotations

from hf_runtime.tasks.registry import Head, Task

# Encoder head -> the vLLM pooling task whose raw output our task processors need.
POOLING_TASKS: dict[Head, str] = {
    Head.base: "token_embed",  # per-token hidden states, pooled by us
    # The head's logits (a cross-encoder's one logit per pair: its token types passed on).
    Head.sequence_classification: "classify",
}
UNSUPPORTED_REASONS: dict[Head, str] = {
    Head.token_classification: (
        "KServe's token_classification labels every padded position of a request, which "
        "vLLM's pooling runner does not compute"
    ),
    Head.masked_lm: "vLLM's pooling runner returns no masked-LM logits",
}

# vLLM 0.32 pools SPLADE vectors only in its own BertSpladeSparseEmbeddingModel: BERT alone,
# max pooling of relu only, and it cannot load the masked-LM head as transformers saves it
# (its decoder weight tied to the word embeddings, its bias under another name).
VOCABULARY_POOLING_REASON = (
    "vLLM pools SPLADE vectors only with its BertSpladeSparseEmbeddingModel (BERT, max "
    "pooling, relu), which cannot load a masked-LM head saved with tied word embeddings"
)


def unsupported_reason(task: Task) -> str | None:
    """Why the vLLM backend cannot serve `task`, or None when it can."""
    if task.spec.vocabulary_pooling:
        return VOCABULARY_POOLING_REASON
    head = task.spec.head
    if head.is_generative or head in POOLING_TASKS:
        return None
    return UNSUPPORTED_REASONS.get(head, f"{task.value} has no vLLM pooling equivalent")
