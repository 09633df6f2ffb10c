"""torch loads with sleeping OpenMP threads where it only pre- and post-processes, unless the
user chose a wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_runtime.config import RuntimeConfig
from hf_runtime.runtime.torch_threads import passive_omp_wait, torch_only_processes

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def torch_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def test_passive_while_torch_loads_then_removed(torch_not_loaded: None) -> None:
    environ: dict[str, str] = {}
    with passive_omp_wait(environ):
        assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in environ  # engine processes started later never see it


@pytest.mark.parametrize("chosen", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "10000"}])
def test_the_users_choice_is_kept(torch_not_loaded: None, chosen: dict[str, str]) -> None:
    environ = dict(chosen)
    with passive_omp_wait(environ):
        assert environ == chosen
    assert environ == chosen


def test_nothing_changes_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", object())
    environ: dict[str, str] = {}
    with passive_omp_wait(environ):
        assert environ == {}


def _config(*backends: str, repository: bool = False) -> RuntimeConfig:
    models = [
        {"model_name": f"m{i}", "model_dir": "/models/m", "task": "text_embedding", "backend": b}
        for i, b in enumerate(backends)
    ]
    server = {"model_repository": "/models"} if repository else {}
    return RuntimeConfig.model_validate({"models": models, "server": server})


def test_passive_only_where_no_forward_runs_on_torch_here() -> None:
    assert torch_only_processes(_config("onnxruntime"))
    assert torch_only_processes(_config("onnxruntime", "vllm"))
    assert not torch_only_processes(_config("onnxruntime", "huggingface"))
    assert not torch_only_processes(_config("auto"))  # may be huggingface
    assert not torch_only_processes(_config("onnxruntime", repository=True))  # loads any later


def test_libgomp_reads_the_policy() -> None:
    """In a fresh process (torch not yet loaded), libgomp itself reports the passive policy
    (OMP_DISPLAY_ENV prints its settings when it loads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="TRUE", PYTHONPATH=str(REPO_ROOT))
    code = (
        "from hf_runtime.runtime.torch_threads import configure_torch_threads\n"
        "configure_torch_threads(passive=True)\n"
        "import os; print('left', os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in done.stderr + done.stdout
    assert "left None" in done.stdout
