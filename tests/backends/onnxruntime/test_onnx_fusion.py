"""The onnxruntime backend's offline fusion (`onnxruntime.fusion: auto`): the fused file is
made once, cached with its key and runs within 1e-4 of torch on architectures with and
without token types, with offset position ids and with left padding; every way it cannot be
used falls back to the unfused file, recorded so it is not tried again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.backends.onnxruntime import fusion as fusion_module
from hf_runtime.backends.onnxruntime.encoder_backend import load_onnx_encoder
from hf_runtime.backends.registry import validate_backend_sections
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import CACHE_ENV
from hf_runtime.tasks.registry import Task
from tests.backends.onnxruntime.conftest import requires_onnxruntime
from tests.backends.onnxruntime.test_onnx_encoder import TEXTS, TOLERANCE, forward
from tests.encoder_support import load_processor, model_config, source_for

pytestmark = requires_onnxruntime


def onnx_processor(path: Path, task: Task = Task.text_embedding, **flags: Any) -> Any:
    from hf_runtime.tasks.base import ProcessorOptions
    from hf_runtime.tasks.processors import make_processor

    config = model_config(path, backend="onnxruntime", **flags)
    backend = load_onnx_encoder(config, source_for(path), task)
    return make_processor(task, backend, ProcessorOptions.from_config(config), path)


def fused_operators(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def no_optimizer(*args: object, **kwargs: object) -> None:
    raise AssertionError("fused again")


def test_the_fused_file_is_cached_with_its_key(
    tiny_models: dict[str, Path], onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_models["bert-ner"]
    backend = load_onnx_encoder(
        model_config(path, backend="onnxruntime"), source_for(path), Task.token_classification
    )
    fused = backend.onnx_file.path
    assert fused.name == "model.fused.onnx" and fused.is_relative_to(onnx_cache / "onnx")
    assert backend.onnx_file.origin.endswith(", fused")
    operators = fused_operators(fused)
    assert {"Attention", "EmbedLayerNormalization"} <= operators
    assert "SkipLayerNormalization" not in operators  # slower on CPU
    key = json.loads((fused.parent / "key.json").read_text())
    assert {"weights", "opset", "fusion", "onnxruntime"} <= set(key)  # the export's and its own
    assert json.loads((fused.parent / "fusion.json").read_text())["fused"] is True

    from onnxruntime.transformers import optimizer

    monkeypatch.setattr(optimizer, "optimize_model", no_optimizer)
    again = load_onnx_encoder(
        model_config(path, backend="onnxruntime"), source_for(path), Task.token_classification
    )
    assert again.onnx_file.path == fused
    off = load_onnx_encoder(
        model_config(path, backend="onnxruntime", onnxruntime={"fusion": "off"}),
        source_for(path),
        Task.token_classification,
    )
    assert off.onnx_file.path.name == "model.onnx"
    assert "Attention" not in fused_operators(off.onnx_file.path)


def test_fusion_is_validated() -> None:
    with pytest.raises(ConfigError, match="onnxruntime.fusion"):
        validate_backend_sections(ModelConfig(model_dir="/m", onnxruntime={"fusion": "on"}))
    with pytest.raises(ConfigError, match="onnxruntime.fusion"):
        validate_backend_sections(ModelConfig(model_dir="/m", onnxruntime={"fusion": True}))


def _fallback(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The file the model runs, and the cached fusion outcome (None: fusion not tried)."""
    backend = load_onnx_encoder(
        model_config(path, backend="onnxruntime"), source_for(path), Task.sequence_classification
    )
    outcomes = list((backend.onnx_file.path.parent.parent).glob("*-fused-*/fusion.json"))
    results = [json.loads(p.read_text()) for p in outcomes]
    return backend.onnx_file.path, results[-1] if results else None


def test_an_unsupported_model_type_runs_the_unfused_file(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(fusion_module, "FUSION_MODEL_TYPES", {})
    path, outcome = _fallback(tiny_models["bert-seq-cls"])
    assert path.name == "model.onnx" and outcome is None


@pytest.mark.parametrize("failure", ["check", "optimizer"])
def test_a_failed_fusion_runs_the_unfused_file_and_is_not_retried(
    failure: str, tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    from onnxruntime.transformers import optimizer

    if failure == "check":
        monkeypatch.setattr(fusion_module, "FUSION_CHECK_TOLERANCE", -1.0)
    else:
        monkeypatch.setattr(optimizer, "optimize_model", no_optimizer)
    path, outcome = _fallback(tiny_models["bert-seq-cls"])
    assert path.name == "model.onnx" and outcome is not None and outcome["fused"] is False
    reason = "failed its check" if failure == "check" else "optimizer failed: AssertionError"
    assert reason in outcome["reason"]
    assert not list(tmp_path.glob("onnx/*-fused-*/model.fused.onnx"))  # only the outcome
    monkeypatch.setattr(optimizer, "optimize_model", no_optimizer)
    monkeypatch.setattr(fusion_module, "largest_difference", no_optimizer)
    assert _fallback(tiny_models["bert-seq-cls"])[0] == path  # the outcome is reused


def _tiny_variant(base: Path, out: Path, architecture: str, left_padding: bool) -> Path:
    """`base`'s tokenizer under a tiny random DistilBERT (no token types) or RoBERTa (position
    ids after the padding index, one token type)."""
    import torch
    import transformers

    shutil.copytree(base, out)
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    shared = {"vocab_size": vocab, "max_position_embeddings": 128, "pad_token_id": 0}
    if architecture == "distilbert":
        config: Any = transformers.DistilBertConfig(
            **shared, dim=64, n_heads=2, n_layers=2, hidden_dim=128
        )
    else:
        config = transformers.RobertaConfig(
            **shared, hidden_size=64, num_attention_heads=2, num_hidden_layers=2,
            intermediate_size=128, type_vocab_size=1,
        )  # fmt: skip
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).eval().save_pretrained(out)
    if left_padding:
        tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
        tokenizer_config["padding_side"] = "left"
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return out


@pytest.mark.parametrize(
    ("architecture", "left_padding"), [("distilbert", True), ("roberta", False)]
)
def test_fused_architectures_are_within_1e_4_of_torch(
    architecture: str,
    left_padding: bool,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    onnx_cache: Path,
) -> None:
    folder = _tiny_variant(
        tiny_models["bert-embed"], tmp_path / architecture, architecture, left_padding
    )
    processor = onnx_processor(folder)
    assert processor.backend.onnx_file.path.name == "model.fused.onnx"
    assert "Attention" in fused_operators(processor.backend.onnx_file.path)
    assert processor.backend.padding_side == ("left" if left_padding else "right")
    expected, _ = forward(load_processor(folder, Task.text_embedding), Task.text_embedding)
    got, _ = forward(processor, Task.text_embedding)
    assert len(got) == len(expected) == len(TEXTS)
    for ours, torch_output in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours, torch_output, atol=TOLERANCE, rtol=0)
