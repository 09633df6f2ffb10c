"""The runtime service.py hosts: startup validation, mounts, readiness."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runtime.errors import ConfigError
from hf_runtime.runtime.server import Runtime
from hf_runtime.types import ModelMetadata


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


class _StatsModel:
    """Just enough of a loaded model for /metrics: ready, a backend, stats()."""

    name = "model"
    task = "text_generation"
    ready = True

    def __init__(self, platform: str, stats: dict[str, int]) -> None:
        self._platform = platform
        self._stats = stats

    @property
    def backend(self) -> str:
        return self._platform

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(self.name, self.task, self._platform, [], [])

    def stats(self) -> dict[str, int]:
        return dict(self._stats)


@pytest.mark.parametrize("backend", ["huggingface", "vllm"])
def test_metrics_text_reports_each_loaded_models_state(tmp_path: Path, backend: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    runtime = Runtime.from_sources({"model_dir": str(tmp_path)})
    (slot,) = runtime.registry.slots()
    slot.attach(_StatsModel(backend, {"running": 3, "waiting": 1, "rejected_requests": 2}))
    text = runtime.metrics_text()
    parsed = {family.name: family for family in text_string_to_metric_families(text)}
    labels = {"model": slot.name, "backend": backend}
    for name, kind, value in [
        ("hf_runtime_requests_running", "gauge", 3.0),
        ("hf_runtime_requests_waiting", "gauge", 1.0),
        ("hf_runtime_rejected_requests", "counter", 2.0),
    ]:
        family = parsed[name]
        assert family.type == kind and family.documentation
        assert [(s.labels, s.value) for s in family.samples] == [(labels, value)]
    # In multiprocess mode (tests/conftest.py, like a BentoML worker) the event histograms
    # reach /metrics through BentoML's collector, never twice through this text.
    assert "hf_runtime_time_to_first_token_seconds" not in text


@pytest.mark.parametrize(
    ("args", "expected_s"), [({}, 0.001), ({"gil_switch_interval_ms": "2.5"}, 0.0025)]
)
async def test_startup_sets_the_gil_switch_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: dict[str, str], expected_s: float
) -> None:
    import signal
    import sys

    before, handler = sys.getswitchinterval(), signal.getsignal(signal.SIGTERM)
    runtime = Runtime.from_sources({"model_dir": str(tmp_path), "grpc_port": "0", **args})
    monkeypatch.setattr(Runtime, "_load", _no_loading)
    try:
        await runtime.start_loading()
        assert sys.getswitchinterval() == pytest.approx(expected_s)
    finally:
        await runtime.close()
        sys.setswitchinterval(before)
        signal.signal(signal.SIGTERM, handler)  # start_loading installed the drain handler


async def _no_loading(self: Runtime) -> None:
    return None


@pytest.mark.parametrize("value", ["0", "-1", "101", "fast"])
def test_gil_switch_interval_out_of_range_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="gil_switch_interval_ms"):
        Runtime.from_sources({"model_dir": "/m", "gil_switch_interval_ms": value})
