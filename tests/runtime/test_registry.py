"""Model slots exist from startup, answer not-ready while loading, and delegate once loaded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hf_runtime.config import load_config
from hf_runtime.errors import ModelLoadFailed, ModelNotFound, ModelNotReady
from hf_runtime.model import Predictor
from hf_runtime.runtime import loading
from hf_runtime.runtime.loading import LoadedModel
from hf_runtime.runtime.registry import Registry
from hf_runtime.types import ModelMetadata, ModelState, ModelStatus


class _Loaded:
    name = "a"
    task = "fill_mask"
    ready = True
    backend = "huggingface"

    def status(self) -> ModelStatus:
        return ModelStatus(ModelState.READY)

    def capability(self, kind: type) -> Any:
        return self if kind is Predictor else None

    def metadata(self) -> ModelMetadata:
        return ModelMetadata("a", "fill_mask", "huggingface", inputs=[], outputs=[])

    async def predict(self, instances: Any) -> str:
        return f"predicted {list(instances)}"


def registry() -> Registry:
    config = load_config(
        args={"config": "/dev/null"},
        env={"HF_RUNTIME_MODEL_DIR": "/m", "HF_RUNTIME_MODEL_NAME": "a"},
    )
    return Registry.from_config(config)


async def test_not_ready_until_loaded_then_delegates(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = asyncio.Event()

    async def slow_load(config: Any) -> LoadedModel:
        await gate.wait()
        return LoadedModel(_Loaded())

    monkeypatch.setattr(loading, "load_model", slow_load)
    reg = registry()
    assert reg.names() == ["a"] and not reg.ready
    task = asyncio.create_task(reg.load_all())
    await asyncio.sleep(0)
    with pytest.raises(ModelNotReady, match="Model with name a is not ready"):
        reg.get("a").capability(Predictor)
    gate.set()
    await task
    assert reg.ready
    assert await reg.get("a").capability(Predictor).predict(["x"]) == "predicted ['x']"
    with pytest.raises(ModelNotFound):
        reg.get("b")


async def test_failed_load_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(config: Any) -> None:
        raise FileNotFoundError("no weights here")

    monkeypatch.setattr(loading, "load_model", broken)
    reg = registry()
    with pytest.raises(FileNotFoundError):
        await reg.load_all()
    with pytest.raises(ModelNotReady, match="Loading failed: FileNotFoundError: no weights"):
        reg.get("a").metadata()
    assert not reg.ready


async def test_slot_states_and_failure_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOADING from startup, FAILED with the load's error as reason (counted), READY after a
    load that works; a FAILED slot raises ModelLoadFailed, whose message carries the reason."""
    from prometheus_client import REGISTRY

    attempts: list[int] = []

    async def flaky(config: Any) -> LoadedModel:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("config.json is not valid JSON:\n line 1")
        return LoadedModel(_Loaded())

    monkeypatch.setattr(loading, "load_model", flaky)
    reg = registry()
    slot = reg.get("a")
    assert slot.status() == ModelStatus(ModelState.LOADING)
    reason = "Loading failed: OSError: config.json is not valid JSON: line 1"
    labels = {"model": "a", "reason": reason}
    before = REGISTRY.get_sample_value("hf_runtime_model_load_failures_total", labels) or 0
    with pytest.raises(OSError):
        await reg.load_all()
    assert slot.status() == ModelStatus(ModelState.FAILED, reason)
    assert REGISTRY.get_sample_value("hf_runtime_model_load_failures_total", labels) == before + 1
    with pytest.raises(ModelLoadFailed) as caught:
        slot.capability(Predictor)
    assert caught.value.reason == reason and reason in caught.value.message
    await reg.load_all()  # a second load (the repository extension's) replaces the failure
    assert slot.status() == ModelStatus(ModelState.READY) and reg.ready
