"""The runtime service.py hosts: startup validation, mounts, readiness."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runtime.errors import ConfigError
from hf_runtime.runtime.server import Runtime


def test_bad_vllm_section_fails_at_startup() -> None:
    args = {"model_dir": "/m", "backend": "vllm", "vllm": "{tensor_parallel: 2}"}
    with pytest.raises(ConfigError, match="vllm.tensor_parallel: unknown key"):
        Runtime.from_sources(args)


def test_gpu_request_follows_tensor_parallel_size() -> None:
    runtime = Runtime.from_sources({"model_dir": "/m", "vllm": "{tensor_parallel_size: 2}"})
    assert runtime.gpu_count == 2
    assert Runtime.from_sources({"model_dir": "/m"}).gpu_count == 1


def test_kserve_v1_is_mounted_before_openai_under_v1() -> None:
    runtime = Runtime.from_sources({"model_dir": "/m"})
    paths = [path for path, _ in runtime.apps]
    assert paths.index("/v1") < paths.index("/openai/v1")
    v1_apps = [app for path, app in runtime.apps if path == "/v1"]
    assert v1_apps[0].title == "KServe V1"


def test_not_ready_before_loading(tmp_path: Path) -> None:
    runtime = Runtime.from_sources({"model_dir": str(tmp_path)})
    assert not runtime.ready
    assert "hf_runtime_" not in runtime.metrics_text()
