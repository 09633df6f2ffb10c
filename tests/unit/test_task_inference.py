"""Task inference from `architectures`, as KServe does (plus the LMHead names it misses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.runtime.loading import resolve_task
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task, infer_task_name


@pytest.mark.parametrize(
    ("architecture", "task"),
    [
        ("BertForSequenceClassification", "sequence_classification"),
        ("DistilBertForTokenClassification", "token_classification"),
        ("BertForMaskedLM", "fill_mask"),
        ("LlamaForCausalLM", "text_generation"),
        ("GPT2LMHeadModel", "text_generation"),
        ("T5ForConditionalGeneration", "text2text_generation"),
        ("T5WithLMHeadModel", "text2text_generation"),
        ("MarianMTModel", "text2text_generation"),
        ("BertForQuestionAnswering", "question_answering"),
        ("BertModel", None),
    ],
)
def test_infer_task_name(architecture: str, task: str | None) -> None:
    assert infer_task_name(architecture) == task


def source(*architectures: str) -> ResolvedSource:
    return ResolvedSource(
        model_path=Path("/m"),
        tokenizer_path=Path("/m"),
        hf_config={"architectures": list(architectures)},
    )


def test_configured_task_wins_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = ModelConfig(model_dir="/m", task="text_embedding")
    assert resolve_task(config, source("BertForMaskedLM")) is Task.text_embedding
    assert "suggests fill_mask" in caplog.text


def test_bare_encoder_needs_a_task() -> None:
    with pytest.raises(ConfigError, match="text_embedding"):
        resolve_task(ModelConfig(model_dir="/m"), source("BertModel"))


def test_unsupported_task_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match="question_answering is not supported.*fill_mask"):
        resolve_task(ModelConfig(model_dir="/m"), source("BertForQuestionAnswering"))
