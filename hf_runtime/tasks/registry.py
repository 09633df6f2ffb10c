"""Every task, declared once: its name, how it is inferred, what it offers and the head it needs.

A leaf (it imports nothing of hf_runtime), so that every layer may read it: the config schema
(the `task:` key), the backends (which head to load: `AutoModelFor...`, a vLLM pooling task),
the runtime (capabilities, task inference) and the task processors. A backend never compares
task names: it reads the task's `Head` and flags here, and maps the head to its own classes.

Adding an encoder task: a member of `Task`, one `TaskSpec` in `TASKS`, and the task module
(`hf_runtime.tasks.<name>`) with its processor and `build_processor`, read lazily through
`TaskSpec.module` (importing a task module imports the backends' interfaces, which must not
happen when a backend reads this table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Task(str, Enum):
    sequence_classification = "sequence_classification"
    token_classification = "token_classification"
    fill_mask = "fill_mask"
    text_embedding = "text_embedding"
    # A cross-encoder: one relevance score per (query, document) pair. Inferred from a
    # one-label ...ForSequenceClassification checkpoint marked as one (see tasks.rerank).
    rerank = "rerank"
    # SPLADE: one sparse vocabulary-sized vector per text (max-pooled log(1 + relu(logits))).
    # Inferred from a ...ForMaskedLM checkpoint saved as a sentence-transformers SparseEncoder.
    sparse_embedding = "sparse_embedding"
    text_generation = "text_generation"
    text2text_generation = "text2text_generation"

    @property
    def spec(self) -> TaskSpec:
        return TASKS[self]

    @property
    def is_generative(self) -> bool:
        return TASKS[self].head.is_generative

    @property
    def is_encoder(self) -> bool:
        return not self.is_generative


class Head(str, Enum):
    """The model head a task runs on, backend-neutral: each backend maps it to its own model
    class (transformers' AutoModelFor...) or runner (vLLM's pooling task), or says why not."""

    base = "base"  # the bare encoder: per-token hidden states
    sequence_classification = "sequence_classification"  # one row of logits per sequence
    token_classification = "token_classification"  # a row of logits per token
    masked_lm = "masked_lm"  # vocabulary logits per token
    causal_lm = "causal_lm"  # decoder-only generation
    seq2seq_lm = "seq2seq_lm"  # encoder-decoder generation

    @property
    def is_generative(self) -> bool:
        return self in (Head.causal_lm, Head.seq2seq_lm)


class Capability(str, Enum):
    """What a served model of the task offers protocols (the interfaces of hf_runtime.model:
    the runtime maps each name to its interface)."""

    predictor = "Predictor"
    embedder = "Embedder"
    sparse_embedder = "SparseEmbedder"
    scorer = "Scorer"
    text_tokenizer = "TextTokenizer"
    text_generator = "TextGenerator"
    pooler = "Pooler"
    classifier = "Classifier"


@dataclass(frozen=True)
class TaskSpec:
    """One task's facts. `module` (encoder tasks) is the task module that defines
    `build_processor(backend, options, model_path)`: its processor, and its options' checks."""

    task: Task
    head: Head
    capabilities: frozenset[Capability]
    # Inference from config.architectures[0]: the longest matching suffix wins.
    architecture_suffixes: tuple[str, ...] = ()
    module: str | None = None
    # Inferred instead of `refines` when `detector` ("module:function", called with the
    # checkpoint folder and its config.json) says the checkpoint is one of this task's.
    refines: Task | None = None
    detector: str | None = None
    # Tokenized as (query, document) pairs: token_type_ids go to the model when it takes them.
    pair_inputs: bool = False
    # Reads each token's character offsets (and text), when the tokenizer can give them.
    token_offsets: bool = False
    # Pools the head's vocabulary logits over the sequence into one vector per text (SPLADE),
    # rather than reading per-token logits: a backend may run it where it has no logits.
    vocabulary_pooling: bool = False


_ENCODER = frozenset({Capability.predictor, Capability.text_tokenizer})
_GENERATOR = frozenset({Capability.text_generator, Capability.text_tokenizer})

TASKS: dict[Task, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec(
            Task.sequence_classification,
            Head.sequence_classification,
            _ENCODER | {Capability.pooler, Capability.classifier},
            ("ForSequenceClassification",),
            module="hf_runtime.tasks.sequence_classification",
        ),
        TaskSpec(
            Task.token_classification,
            Head.token_classification,
            _ENCODER,
            ("ForTokenClassification",),
            module="hf_runtime.tasks.token_classification",
            token_offsets=True,
        ),
        TaskSpec(
            Task.fill_mask,
            Head.masked_lm,
            _ENCODER,
            ("ForMaskedLM",),
            module="hf_runtime.tasks.fill_mask",
        ),
        TaskSpec(
            Task.text_embedding,
            Head.base,
            _ENCODER | {Capability.embedder, Capability.scorer, Capability.pooler},
            module="hf_runtime.tasks.text_embedding",
        ),
        TaskSpec(
            Task.rerank,
            Head.sequence_classification,  # a one-label cross-encoder
            frozenset(
                {
                    Capability.scorer,
                    Capability.text_tokenizer,
                    Capability.pooler,
                    Capability.classifier,
                }
            ),
            module="hf_runtime.tasks.rerank",
            refines=Task.sequence_classification,
            detector="hf_runtime.tasks.rerank:is_cross_encoder",
            pair_inputs=True,
        ),
        TaskSpec(
            Task.sparse_embedding,
            Head.masked_lm,
            # Embedder: the sparse vector written out densely (vocabulary-sized), as TEI's
            # /embed and vLLM's /v1/embeddings serve a SPLADE model.
            # Pooler: vLLM's /pooling, the same dense vector.
            _ENCODER | {Capability.sparse_embedder, Capability.embedder, Capability.pooler},
            module="hf_runtime.tasks.sparse_embedding",
            refines=Task.fill_mask,
            detector="hf_runtime.tasks.sparse_checkpoint:is_sparse_encoder",
            vocabulary_pooling=True,
        ),
        TaskSpec(
            Task.text_generation,
            Head.causal_lm,
            _GENERATOR,
            # Older names KServe misses (GPT2LMHeadModel) end in LMHeadModel.
            ("ForCausalLM", "LMHeadModel"),
        ),
        TaskSpec(
            Task.text2text_generation,
            Head.seq2seq_lm,
            _GENERATOR,
            ("T5WithLMHeadModel", "ForConditionalGeneration", "MTModel", "EncoderDecoderModel"),
        ),
    )
}

SUPPORTED_TASKS = ", ".join(t.value for t in Task)

# Recognised but not served: named so that the error can say what the checkpoint is.
UNSERVED_ARCHITECTURE_SUFFIXES: dict[str, str] = {
    "TapasForQuestionAnswering": "table_question_answering",
    "ForQuestionAnswering": "question_answering",
    "ForMultipleChoice": "multiple_choice",
}


def infer_task_name(architecture: str) -> str | None:
    """The task name KServe would infer for `architecture`, or None if nothing matches: the
    longest suffix that matches wins (T5WithLMHeadModel over LMHeadModel)."""
    suffixes = dict(UNSERVED_ARCHITECTURE_SUFFIXES)
    for spec in TASKS.values():
        suffixes.update((suffix, spec.task.value) for suffix in spec.architecture_suffixes)
    matches = [suffix for suffix in suffixes if architecture.endswith(suffix)]
    return suffixes[max(matches, key=len)] if matches else None


def refinements(task_name: str) -> list[TaskSpec]:
    """The tasks inferred instead of `task_name` when their detector recognises the
    checkpoint (rerank for a sequence classifier saved as a cross-encoder)."""
    return [s for s in TASKS.values() if s.refines is not None and s.refines.value == task_name]
