"""Engine death is liveness: a loaded model whose engine died is FAILED with how it died, the
registry is no longer live, and the watch reports it once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hf_runtime.config import load_config
from hf_runtime.errors import ModelLoadFailed
from hf_runtime.model import Predictor
from hf_runtime.runtime import loading
from hf_runtime.runtime.liveness import EngineWatch
from hf_runtime.runtime.loading import LoadedModel
from hf_runtime.runtime.registry import Registry
from hf_runtime.runtime.served_model import ServedModelBase
from hf_runtime.tasks.registry import Task

DEATH = "Its vLLM engine core process died: EngineCore_DP0 was killed by signal 9 (SIGKILL)"


class _Engine:
    failure: str | None = None


class _Model(ServedModelBase):
    def __init__(self, config: Any) -> None:
        super().__init__(config, Task.fill_mask, "vllm")
        self.engine = _Engine()
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready and self.engine.failure is None

    def engine_failure(self) -> str | None:
        return self.engine.failure if self._ready else None


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> tuple[Registry, list[_Model]]:
    models: list[_Model] = []

    async def load(config: Any) -> LoadedModel:
        models.append(_Model(config))
        return LoadedModel(models[-1])

    monkeypatch.setattr(loading, "load_model", load)
    config = load_config(args={"model_dir": "/m", "model_name": "a"}, env={})
    registry = Registry.from_config(config)
    asyncio.run(registry.load_all())
    return registry, models


def test_a_dead_engine_fails_the_model_and_liveness(loaded: tuple[Registry, list[_Model]]) -> None:
    registry, (model,) = loaded
    assert registry.live and registry.ready and registry.dead_engines() == {}
    model.engine.failure = DEATH
    status = registry.get("a").status()
    assert (status.state.value, status.reason) == ("FAILED", DEATH)
    assert not registry.live and not registry.ready
    assert registry.dead_engines() == {"a": DEATH}
    with pytest.raises(ModelLoadFailed, match="cannot serve requests. Its vLLM engine core"):
        registry.get("a").capability(Predictor)


def test_a_closed_model_is_unavailable_not_dead(loaded: tuple[Registry, list[_Model]]) -> None:
    registry, (model,) = loaded
    model._ready = False  # closed (shutdown): its engine reports nothing
    model.engine.failure = "Its vLLM engine died: shut down"
    assert registry.get("a").status().state.value == "UNAVAILABLE" and registry.live


async def test_the_watch_reports_the_death_once(
    loaded: tuple[Registry, list[_Model]], caplog: pytest.LogCaptureFixture
) -> None:
    registry, (model,) = loaded
    deaths: list[str] = []

    async def on_death(names: str) -> None:
        deaths.append(names)

    watch = EngineWatch(registry, on_death, interval=0.01)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.05)
    assert watch.live and deaths == []
    model.engine.failure = DEATH
    await asyncio.wait_for(task, 30)
    assert deaths == ["a"] and not watch.live
    assert f"model a: {DEATH}" in caplog.messages
