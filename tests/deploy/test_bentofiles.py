"""configs/deploy/bentofile-vllm.yaml is bentofile.yaml plus vLLM, and builds offline."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
import yaml

from hf_runtime.config import REPO_ROOT
from tests.deploy.manifests import DEPLOY, IMAGE_SRC, bentofile, in_repo, one


def test_the_vllm_bentofile_only_adds_vllm() -> None:
    base, gpu = bentofile("hf-runtime"), bentofile("hf-runtime-vllm")
    extra = [p for p in gpu["python"]["packages"] if p not in base["python"]["packages"]]
    assert extra == ["vllm==0.32.0"]
    assert [p for p in base["python"]["packages"] if p not in gpu["python"]["packages"]] == []
    same = {k: v for k, v in gpu.items() if k not in ("name", "description", "python")}
    assert same == {k: v for k, v in base.items() if k not in ("name", "description", "python")}
    assert {**gpu["python"], "packages": None} == {**base["python"], "packages": None}
    # vllm 0.32.0 pins torch==2.13.0 and transformers>=5.16.1,<5.20: the same as the image's
    assert "torch==2.13.0" in base["python"]["packages"]
    assert "transformers>=5.16.1,<5.20" in base["python"]["packages"]


def test_the_kserve_runtime_config_ships_in_the_bento() -> None:
    """HF_RUNTIME_CONFIG of the ServingRuntimes names a file the Bento includes."""
    import pathspec

    (env,) = [e for e in one("ServingRuntime")["spec"]["containers"][0]["env"]
              if e["name"] == "HF_RUNTIME_CONFIG"]  # fmt: skip
    relative = str(PurePosixPath(env["value"]).relative_to(IMAGE_SRC))
    assert (REPO_ROOT / relative).is_file() and in_repo(env["value"]) == str(REPO_ROOT / relative)
    for name in ("hf-runtime", "hf-runtime-vllm"):
        spec = pathspec.PathSpec.from_lines("gitwildmatch", bentofile(name)["include"])
        assert spec.match_file(relative), name
        assert not spec.match_file("configs/deploy/kubernetes/deployment.yaml")


@pytest.mark.slow
def test_the_vllm_bento_builds_offline(tmp_path: Path) -> None:
    from tests.test_packaging import build_bento

    home = tmp_path / "home"
    bento = build_bento(home, "-f", str(DEPLOY / "bentofile-vllm.yaml"), name="hf-runtime-vllm")
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["name"] == "hf-runtime-vllm"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "vllm==0.32.0" in requirements and "torch==2.13.0" in requirements
    assert (bento / "src" / "configs" / "deploy" / "kserve" / "runtime-config.yaml").is_file()


def test_the_bento_installs_every_runtime_dependency() -> None:
    """The image installs bentofile.yaml's list, not pyproject.toml's: a dependency added to one
    must reach the other (xgrammar missing would drop structured outputs from the image)."""
    import tomllib
    from packaging.requirements import Requirement

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name for r in declared["dependencies"]}
    shipped = {Requirement(p).name for p in bentofile("hf-runtime")["python"]["packages"]}
    assert wanted <= shipped, sorted(wanted - shipped)


def test_the_default_configs_files_ship_in_the_bento() -> None:
    """Files the default config names (the SmolLM2 chat template) are in the Bento."""
    import pathspec

    default = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    files = [
        m["generation"]["chat_template"]
        for m in default["models"]
        if (m.get("generation") or {}).get("chat_template")
    ]
    assert files
    for name in ("hf-runtime", "hf-runtime-vllm"):
        spec = pathspec.PathSpec.from_lines("gitwildmatch", bentofile(name)["include"])
        for path in files:
            assert (REPO_ROOT / path).is_file() and spec.match_file(path), (name, path)


def test_the_bentos_install_the_onnxruntime_backend() -> None:
    """`backend: onnxruntime` runs in both images: each lists pyproject's `onnx` extra, with the
    GPU build of onnxruntime (CPU and CUDA execution providers) in place of the CPU build, at
    a version whose CUDA provider uses the CUDA 13 libraries torch 2.13 brings (1.27 on)."""
    import tomllib
    from packaging.requirements import Requirement

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extra = {Requirement(r).name for r in declared["optional-dependencies"]["onnx"]}
    wanted = {"onnxruntime-gpu" if name == "onnxruntime" else name for name in extra}
    for name in ("hf-runtime", "hf-runtime-vllm"):
        packages = [Requirement(p) for p in bentofile(name)["python"]["packages"]]
        shipped = {package.name: package for package in packages}
        assert wanted <= set(shipped), (name, sorted(wanted - set(shipped)))
        assert "onnxruntime" not in shipped  # two builds of one module: the last install wins
        gpu = shipped["onnxruntime-gpu"].specifier
        assert "1.27.0" in gpu and "1.26.0" not in gpu and "2.0" not in gpu, (name, gpu)
