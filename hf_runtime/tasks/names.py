"""Task names and their inference from a model's architecture (as KServe does)."""

from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    sequence_classification = "sequence_classification"
    token_classification = "token_classification"
    fill_mask = "fill_mask"
    text_embedding = "text_embedding"
    # A cross-encoder: one relevance score per (query, document) pair. Inferred from a
    # one-label ...ForSequenceClassification checkpoint marked as one (see tasks.rerank).
    rerank = "rerank"
    text_generation = "text_generation"
    text2text_generation = "text2text_generation"

    @property
    def is_generative(self) -> bool:
        return self in (Task.text_generation, Task.text2text_generation)

    @property
    def is_encoder(self) -> bool:
        return not self.is_generative


SUPPORTED_TASKS = ", ".join(t.value for t in Task)

# Checked in order against config.architectures[0]; the first suffix that matches wins.
# Unsupported-but-recognised tasks map to None so the error can name them.
_ARCHITECTURE_SUFFIXES: list[tuple[str, str]] = [
    ("TapasForQuestionAnswering", "table_question_answering"),
    ("ForQuestionAnswering", "question_answering"),
    ("ForTokenClassification", Task.token_classification.value),
    ("ForSequenceClassification", Task.sequence_classification.value),
    ("ForMultipleChoice", "multiple_choice"),
    ("ForMaskedLM", Task.fill_mask.value),
    ("ForCausalLM", Task.text_generation.value),
    # Older names KServe misses (GPT2LMHeadModel, T5WithLMHeadModel): more specific first.
    ("T5WithLMHeadModel", Task.text2text_generation.value),
    ("LMHeadModel", Task.text_generation.value),
    ("ForConditionalGeneration", Task.text2text_generation.value),
    ("MTModel", Task.text2text_generation.value),
    ("EncoderDecoderModel", Task.text2text_generation.value),
]


def infer_task_name(architecture: str) -> str | None:
    """The task name KServe would infer for `architecture`, or None if nothing matches."""
    for suffix, task in _ARCHITECTURE_SUFFIXES:
        if architecture.endswith(suffix):
            return task
    return None
