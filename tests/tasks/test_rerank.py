"""The rerank task: which checkpoints are cross-encoders, their scores, and pair tokenisation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.runtime.loading import resolve_task
from hf_runtime.tasks.base import ProcessorOptions
from hf_runtime.tasks.registry import Task
from hf_runtime.tasks.rerank import (
    RerankProcessor,
    checkpoint_raw_scores,
    is_cross_encoder,
    sigmoid,
)
from tests.encoder_support import load_backend, source_for

ONE_LABEL = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}}
ST_SECTION = {"sentence_transformers": {"activation_fn": "torch.nn.Sigmoid", "version": "4.1"}}


def folder(tmp_path: Path, config: dict[str, Any], **files: dict[str, Any]) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    for name, content in files.items():
        (tmp_path / name.replace("__", ".")).write_text(json.dumps(content))
    return tmp_path


@pytest.mark.parametrize(
    ("config", "files", "expected"),
    [
        ({**ONE_LABEL, **ST_SECTION}, {}, True),  # sentence-transformers v3/v4
        (ONE_LABEL, {"config_sentence_transformers__json": {"model_type": "CrossEncoder"}}, True),
        (ONE_LABEL, {"config_sentence_transformers__json": {"__version__": {}}}, True),
        (  # a bi-encoder's own settings file (it has modules.json) says nothing
            ONE_LABEL,
            {"config_sentence_transformers__json": {"__version__": {}}, "modules__json": []},
            False,
        ),
        (ONE_LABEL, {}, False),  # an unmarked one-label classifier (a regressor) stays one
        ({**ONE_LABEL, "id2label": {"0": "NO", "1": "YES"}, **ST_SECTION}, {}, False),
        ({"architectures": ["BertForSequenceClassification"], **ST_SECTION}, {}, False),
        ({**ONE_LABEL, "architectures": ["BertModel"], **ST_SECTION}, {}, False),
        (
            {"num_labels": 1, **ST_SECTION, "architectures": ["XForSequenceClassification"]},
            {},
            True,
        ),
    ],
)
def test_which_checkpoints_are_cross_encoders(
    tmp_path: Path, config: dict[str, Any], files: dict[str, Any], expected: bool
) -> None:
    path = folder(tmp_path, config, **files)
    assert is_cross_encoder(path, config) is expected


def test_task_inference_and_an_explicit_task(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["bert-cross-encoder"]
    source = source_for(path)
    assert resolve_task(ModelConfig(model_dir=str(path)), source) is Task.rerank
    explicit = ModelConfig(model_dir=str(path), task="sequence_classification")
    assert resolve_task(explicit, source) is Task.sequence_classification  # explicit wins
    classifier = tiny_models["bert-seq-cls"]
    config = ModelConfig(model_dir=str(classifier))
    assert resolve_task(config, source_for(classifier)) is Task.sequence_classification
    assert resolve_task(config.model_copy(update={"task": Task.rerank}), source) is Task.rerank


@pytest.mark.parametrize(
    ("activation", "raw"),
    [("torch.nn.modules.linear.Identity", True), ("torch.nn.modules.activation.Sigmoid", False)],
)
def test_the_checkpoints_activation(tmp_path: Path, activation: str, raw: bool) -> None:
    settings = {"model_type": "CrossEncoder", "activation_fn": activation}
    path = folder(tmp_path, ONE_LABEL, config_sentence_transformers__json=settings)
    assert checkpoint_raw_scores(path) is raw


def test_scores_are_sigmoid_or_raw_logits(tiny_models: dict[str, Path]) -> None:
    backend = load_backend(tiny_models["bert-cross-encoder"], Task.rerank)
    logits = [np.array([2.0], np.float32), np.array([-1.5], np.float32)]
    scores = RerankProcessor(backend, ProcessorOptions()).postprocess([], logits)
    assert scores.predictions == pytest.approx([1 / (1 + np.exp(-2)), 1 / (1 + np.exp(1.5))])
    assert (scores.tensors[0].datatype, scores.tensors[0].shape) == ("FP64", [2])
    raw = RerankProcessor(backend, ProcessorOptions(), raw_scores=True).postprocess([], logits)
    assert raw.predictions == [2.0, -1.5]
    assert sigmoid(np.array([0.0]))[0] == np.float32(0.5)


def test_a_head_with_several_labels_is_no_cross_encoder(tiny_models: dict[str, Path]) -> None:
    backend = load_backend(tiny_models["bert-seq-cls"], Task.rerank)
    with pytest.raises(ConfigError, match="ONE label.*has 2 labels"):
        RerankProcessor(backend, ProcessorOptions())


def test_pairs_keep_the_query_and_cut_the_document(tiny_models: dict[str, Path]) -> None:
    import transformers

    path = tiny_models["bert-cross-encoder"]
    backend = load_backend(path, Task.rerank, max_model_len=12)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    query, document = "what is the capital of france", "paris is the capital city of france"
    (pair,) = backend.tokenize_pairs([query], [document])
    expected = tokenizer(query, document, truncation="only_second", max_length=12)
    assert list(pair.input_ids) == expected["input_ids"] and len(pair) == 12
    assert list(pair.token_type_ids) == expected["token_type_ids"]
    assert pair.token_type_ids.count(1) > 0
    # A query too long to leave room for the document: longest_first, as sentence-transformers
    # cuts it, rather than an error (for that pair only).
    long_query = "the quick brown fox jumps over the lazy dog " * 3
    short, cut = backend.tokenize_pairs([query, long_query], ["paris", document])
    assert list(short.input_ids) == tokenizer(query, "paris")["input_ids"]
    fallback = tokenizer(long_query, document, truncation="longest_first", max_length=12)
    assert list(cut.input_ids) == fallback["input_ids"]
    (whole,) = backend.tokenize_pairs([query], [document], truncate=False)
    assert len(whole) == len(tokenizer(query, document)["input_ids"]) > 12


def test_a_copied_checkpoint_keeps_its_marker(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """The marker lives in config.json, so a copy (a model store, a container) stays rerank."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_models["bert-cross-encoder"], copy)
    assert is_cross_encoder(copy, json.loads((copy / "config.json").read_text()))
    assert not checkpoint_raw_scores(copy)
