"""The task registry: every task declared once, and each declaration usable by every layer."""

from __future__ import annotations

import importlib

import pytest

from hf_runtime.backends.vllm.tasks import POOLING_TASKS, UNSUPPORTED_REASONS
from hf_runtime.model import (
    Classifier,
    Embedder,
    Pooler,
    Predictor,
    Scorer,
    SparseEmbedder,
    TextGenerator,
    TextTokenizer,
)
from hf_runtime.runtime.served_model import CAPABILITY_INTERFACES
from hf_runtime.tasks.registry import TASKS, Capability, Head, Task, infer_task_name


def test_every_task_is_declared_once() -> None:
    assert set(TASKS) == set(Task)
    assert all(TASKS[task].task is task and task.spec is TASKS[task] for task in Task)


@pytest.mark.parametrize("task", [t for t in Task if t.is_encoder])
def test_an_encoder_task_names_its_module_and_its_processor_builder(task: Task) -> None:
    assert task.spec.module is not None
    module = importlib.import_module(task.spec.module)
    assert callable(module.build_processor)
    assert Capability.text_tokenizer in task.spec.capabilities


@pytest.mark.parametrize("task", [t for t in Task if t.is_generative])
def test_a_generative_task_has_no_processor_module(task: Task) -> None:
    assert task.spec.module is None
    assert Capability.text_generator in task.spec.capabilities


def test_a_refining_task_names_its_detector() -> None:
    refining = [spec for spec in TASKS.values() if spec.refines is not None]
    assert refining  # rerank over sequence_classification
    for spec in refining:
        assert spec.detector is not None
        module, function = spec.detector.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_every_capability_has_its_interface() -> None:
    assert set(CAPABILITY_INTERFACES) == set(Capability)
    interfaces = {
        Predictor,
        Embedder,
        SparseEmbedder,
        Scorer,
        TextTokenizer,
        TextGenerator,
        Pooler,
        Classifier,
    }
    assert set(CAPABILITY_INTERFACES.values()) == interfaces


def test_every_encoder_head_is_loadable_or_refused_with_a_reason_on_vllm() -> None:
    for head in Head:
        if not head.is_generative:
            assert (head in POOLING_TASKS) != (head in UNSUPPORTED_REASONS), head


def test_architecture_suffixes_are_unique_across_tasks() -> None:
    suffixes = [s for spec in TASKS.values() for s in spec.architecture_suffixes]
    assert len(suffixes) == len(set(suffixes))


def test_the_longest_suffix_wins() -> None:
    assert infer_task_name("T5WithLMHeadModel") == "text2text_generation"
    assert infer_task_name("GPT2LMHeadModel") == "text_generation"
    assert infer_task_name("TapasForQuestionAnswering") == "table_question_answering"


def test_every_encoder_head_has_a_transformers_class() -> None:
    from hf_runtime.backends.huggingface.encoder_backend import MODEL_CLASSES

    assert set(MODEL_CLASSES) == {head for head in Head if not head.is_generative}
