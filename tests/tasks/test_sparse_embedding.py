"""The sparse_embedding task: which SparseEncoder checkpoints are detected and served, which
module stacks are refused (naming them), the V2 padding convention and max_active_dims.
The values themselves are checked against SparseEncoder.encode in
tests/protocols/test_sparse_embeddings.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.backends import SparsePooling
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.sparse_checkpoint import is_sparse_encoder, read_sparse_settings
from hf_runtime.tasks.sparse_embedding import SparseEmbeddingProcessor, padded_tensors
from hf_runtime.types import SparseVector

ST = "sentence_transformers"
TRANSFORMER = f"{ST}.base.modules.transformer.Transformer"
MLM_TRANSFORMER = f"{ST}.sparse_encoder.modules.mlm_transformer.MLMTransformer"
SPLADE = f"{ST}.sparse_encoder.modules.splade_pooling.SpladePooling"


def checkpoint(
    folder: Path,
    modules: list[tuple[str, str]],
    pooling: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    entries = [
        {"idx": i, "name": str(i), "path": path, "type": kind}
        for i, (kind, path) in enumerate(modules)
    ]
    (folder / "modules.json").write_text(json.dumps(entries))
    for kind, path in modules:
        if kind == SPLADE:
            (folder / path).mkdir()
            (folder / path / "config.json").write_text(json.dumps(pooling or {}))
    if settings is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return folder


def test_detection_by_modules_or_model_type(tmp_path: Path) -> None:
    splade = tmp_path / "a"
    splade.mkdir()
    assert not is_sparse_encoder(splade, {})
    checkpoint(splade, [(TRANSFORMER, ""), (SPLADE, "1_SpladePooling")])
    assert is_sparse_encoder(splade, {})
    typed = tmp_path / "b"
    typed.mkdir()
    (typed / "config_sentence_transformers.json").write_text('{"model_type": "SparseEncoder"}')
    assert is_sparse_encoder(typed, {})
    dense = tmp_path / "c"
    dense.mkdir()
    checkpoint(dense, [(TRANSFORMER, ""), (f"{ST}.base.modules.pooling.Pooling", "1_Pooling")])
    assert not is_sparse_encoder(dense, {})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "modules.json").write_text("{not json")
    assert not is_sparse_encoder(tmp_path / "d", {})


def test_settings_of_a_served_stack(tmp_path: Path) -> None:
    folder = checkpoint(
        tmp_path,
        [(MLM_TRANSFORMER, ""), (SPLADE, "1_SpladePooling")],
        {"pooling_strategy": "sum", "activation_function": "log1p_relu"},
        {"prompts": {"query": "q: "}, "default_prompt_name": "query", "max_active_dims": 7},
    )
    settings = read_sparse_settings(folder)
    assert settings.pooling == SparsePooling("sum", "log1p_relu")
    assert (settings.prompts, settings.default_prompt_name) == ({"query": "q: "}, "query")
    assert settings.max_active_dims == 7


def test_a_bare_masked_lm_checkpoint_is_max_pooled_relu(tmp_path: Path) -> None:
    assert read_sparse_settings(tmp_path).pooling == SparsePooling("max", "relu")


ROUTER = f"{ST}.base.modules.router.Router"
STATIC = f"{ST}.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding"
CSR = f"{ST}.sparse_encoder.modules.sparse_auto_encoder.SparseAutoEncoder"
POOLING = f"{ST}.base.modules.pooling.Pooling"


@pytest.mark.parametrize(
    ("modules", "named"),
    [
        ([(ROUTER, "")], "Router"),  # inference-free: queries through SparseStaticEmbedding
        ([(STATIC, "")], "SparseStaticEmbedding"),
        ([(TRANSFORMER, ""), (POOLING, "1_Pooling"), (CSR, "2_CSR")], "SparseAutoEncoder"),
        ([(TRANSFORMER, ""), (SPLADE, "1"), (f"{ST}.base.modules.dense.Dense", "2")], "Dense"),
        ([("my_package.Custom", ""), (SPLADE, "1")], "Custom"),
    ],
)
def test_unsupported_stacks_are_refused_naming_their_modules(
    tmp_path: Path, modules: list[tuple[str, str]], named: str
) -> None:
    folder = checkpoint(tmp_path, modules)
    with pytest.raises(ConfigError, match=f"modules \\[.*{named}.*\\] are not supported"):
        read_sparse_settings(folder)


@pytest.mark.parametrize(
    ("pooling", "sentence_bert", "message"),
    [
        ({"pooling_strategy": "mean"}, None, "pooling_strategy 'mean'"),
        ({"activation_function": "gelu"}, None, "activation_function 'gelu'"),
        ({}, {"transformer_task": "feature-extraction"}, "transformer_task 'feature-extraction'"),
    ],
)
def test_unsupported_settings_are_refused(
    tmp_path: Path, pooling: dict[str, Any], sentence_bert: dict[str, Any] | None, message: str
) -> None:
    folder = checkpoint(tmp_path, [(TRANSFORMER, ""), (SPLADE, "1_SpladePooling")], pooling)
    if sentence_bert is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps(sentence_bert))
    with pytest.raises(ConfigError, match=message):
        read_sparse_settings(folder)


@pytest.mark.parametrize("limit", [0, -3, "5", True, 1.5])
def test_a_bad_max_active_dims_is_refused(tmp_path: Path, limit: Any) -> None:
    (tmp_path / "config_sentence_transformers.json").write_text(
        json.dumps({"max_active_dims": limit})
    )
    with pytest.raises(ConfigError, match="max_active_dims"):
        read_sparse_settings(tmp_path)


def test_v2_rows_are_padded_with_minus_one_and_zero() -> None:
    indices, values = padded_tensors(
        [SparseVector([2, 5, 9], [0.5, 1.0, 2.0]), SparseVector([], []), SparseVector([1], [3.0])]
    )
    assert (indices.name, indices.datatype, indices.shape) == ("indices", "INT64", [3, 3])
    assert indices.data == [2, 5, 9, -1, -1, -1, 1, -1, -1]
    assert (values.name, values.datatype, values.shape) == ("values", "FP32", [3, 3])
    assert values.data == [0.5, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]
    empty = padded_tensors([SparseVector([], [])])
    assert [t.shape for t in empty] == [[1, 0], [1, 0]]


class _Processor(SparseEmbeddingProcessor):
    """Only the vector handling (no backend)."""

    def __init__(self, max_active_dims: int | None) -> None:
        self.max_active_dims = max_active_dims


def test_max_active_dims_keeps_the_largest_values_and_drops_zeros() -> None:
    vector = np.array([0.0, 0.3, 0.0, 0.9, 0.1, 0.5], dtype=np.float32)
    [kept] = _Processor(2).sparse_vectors([vector])
    assert kept.indices == [3, 5]
    np.testing.assert_allclose(kept.values, [0.9, 0.5])
    [every] = _Processor(None).sparse_vectors([vector])
    assert every.indices == [1, 3, 4, 5]
    [all_of_them] = _Processor(10).sparse_vectors([vector])
    assert all_of_them.indices == [1, 3, 4, 5]
