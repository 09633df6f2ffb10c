"""server.model_repository: folders become loadable models; load / unload / index semantics,
with fake loads (fast). Real tiny models over tritonclient: tests/protocols."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.cli import serve_command
from hf_runtime.config import ModelConfig, RuntimeConfig, load_config
from hf_runtime.errors import InvalidInput, ModelNotFound, ModelNotReady
from hf_runtime.model import Predictor
from hf_runtime.observability.context import RequestContext, request_scope
from hf_runtime.runtime import loading
from hf_runtime.runtime.loading import LoadedModel
from hf_runtime.runtime.model_repository import scan
from hf_runtime.runtime.model_slot import UNLOADING
from hf_runtime.runtime.registry import Registry
from hf_runtime.types import ModelMetadata, ModelState, ModelStatus


class _Model:
    task = "fill_mask"
    backend = "huggingface"

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        self.closed = False

    def capability(self, kind: type) -> Any:
        return self if kind is Predictor else None

    def status(self) -> ModelStatus:
        return ModelStatus(ModelState.READY if self.ready else ModelState.UNAVAILABLE)

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(self.name, self.task, "huggingface", inputs=[], outputs=[])

    def stats(self) -> dict[str, int]:
        return {"queue": 0}

    async def aclose(self) -> None:
        self.ready, self.closed = False, True


def checkpoint(folder: Path, settings: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    if settings is not None:
        (folder / "hf-runtime.yaml").write_text(settings)
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    checkpoint(tmp_path / "alpha")
    checkpoint(tmp_path / "beta", "task: fill_mask\nbatching: {max_batch_size: 4}\n")
    checkpoint(tmp_path / "broken", "task: no_such_task\n")
    checkpoint(tmp_path / "named", "model_name: other\n")
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "README.md").write_text("not a model")
    return tmp_path


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fake loads: each loaded name, in order; a model named `fails*` fails."""
    loaded: list[str] = []

    async def fake_load(config: ModelConfig) -> LoadedModel:
        await asyncio.sleep(0.01)
        if config.model_name.startswith("fails"):
            raise OSError("no weights here")
        loaded.append(config.model_name)
        return LoadedModel(_Model(config.model_name))

    monkeypatch.setattr(loading, "load_model", fake_load)
    return loaded


def registry(repo: Path, configured: tuple[str, ...] = (), **server: Any) -> Registry:
    models = [{"model_name": name, "model_dir": "/m"} for name in configured]
    config = RuntimeConfig.model_validate(
        {"models": models, "server": {"model_repository": str(repo), **server}}
    )
    return Registry.from_config(config)


def test_scan_reads_settings_validated_like_a_models_entry(repo: Path) -> None:
    folders = scan(str(repo))
    assert sorted(folders) == ["alpha", "beta", "broken", "lora", "named"]
    assert folders["alpha"].config is not None and folders["alpha"].config.model_dir == str(
        repo / "alpha"
    )
    beta = folders["beta"].config
    assert beta is not None and beta.task is not None and beta.batching.max_batch_size == 4
    assert "task" in folders["broken"].error and folders["broken"].config is None
    assert "model_name come(s) from the folder" in folders["named"].error
    assert folders["lora"].is_adapter


def test_a_repository_alone_is_a_valid_configuration(repo: Path) -> None:
    env = {"HF_RUNTIME_MODEL_REPOSITORY": str(repo), "HF_RUNTIME_MODEL_REPOSITORY_LOAD": "a,b"}
    config = load_config(args={"config": "/dev/null"}, env=env)
    assert config.models == [] and config.server.model_repository_load == ["a", "b"]
    with pytest.raises(ValueError, match="at least 1 model"):
        load_config(args={"config": "/dev/null"}, env={})
    # Alone (KServe's --model_repository), the default file's models are not served.
    alone = load_config(args={"model_repository": str(repo)}, env={})
    assert alone.models == [] and alone.server.model_repository == str(repo)
    command = serve_command(["--model_repository", str(repo), "--model-repository-load", "x"])
    assert f"model_repository={repo}" in command and "model_repository_load=x" in command


async def test_nothing_loads_until_asked_then_load_unload_cycle(
    repo: Path, loads: list[str]
) -> None:
    reg = registry(repo)
    await reg.load_all()
    assert loads == [] and reg.ready and reg.names() == []
    index = {e.name: e for e in await reg.index()}
    assert index["alpha"].state is ModelState.UNAVAILABLE and index["alpha"].reason
    assert index["broken"].state is ModelState.FAILED and "task" in index["broken"].reason
    assert "lora" not in index  # adapters load through the LoRA routes
    with pytest.raises(ModelNotReady, match="not loaded"):
        reg.get("alpha").metadata()

    await reg.load("alpha")
    await reg.load("alpha")  # idempotent
    assert loads == ["alpha"] and reg.ready and reg.names() == ["alpha"]
    assert reg.get("alpha").metadata().name == "alpha"
    assert [e.name for e in await reg.index(ready_only=True)] == ["alpha"]

    model = reg.get("alpha").model
    await reg.unload("alpha")
    await reg.unload("alpha")  # idempotent too
    assert isinstance(model, _Model) and model.closed
    assert reg.names() == [] and reg.ready and reg.get("alpha").stats() == {}
    await reg.load("alpha")
    assert loads == ["alpha", "alpha"]


async def test_unknown_bad_and_failed_names(repo: Path, loads: list[str]) -> None:
    checkpoint(repo / "fails-to-load")
    reg = registry(repo)
    for call in (reg.load, reg.unload):
        with pytest.raises(ModelNotFound):
            await call("nope")
    with pytest.raises(InvalidInput, match="task"):
        await reg.load("broken")
    with pytest.raises(InvalidInput, match="LoRA adapter"):
        await reg.load("lora")
    with pytest.raises(InvalidInput, match="OSError: no weights here"):
        await reg.load("fails-to-load")
    entry = {e.name: e for e in await reg.index()}["fails-to-load"]
    assert entry.state is ModelState.FAILED and "no weights here" in entry.reason
    assert not reg.ready  # asked for, and failed
    await reg.unload("fails-to-load")  # no longer meant to be loaded
    assert reg.ready


async def test_folders_added_while_serving_are_found(repo: Path, loads: list[str]) -> None:
    reg = registry(repo)
    checkpoint(repo / "late")
    await reg.load("late")
    assert reg.get("late").ready


async def test_startup_list_and_configured_models(repo: Path, loads: list[str]) -> None:
    reg = registry(repo, configured=("main",), model_repository_load=["beta"])
    assert not reg.ready
    await reg.load_all()
    assert loads == ["main", "beta"] and reg.ready
    assert reg.names() == ["main", "beta"]
    checkpoint(repo / "fails-too")
    everything = registry(repo, model_repository_load=["*"])
    with pytest.raises(OSError):  # the failure is raised once the others have loaded
        await everything.load_all()
    assert set(everything.names()) == {"alpha", "beta", "fails-too"}
    assert everything.get("alpha").ready and not everything.ready


async def test_unload_waits_for_requests_in_flight(repo: Path, loads: list[str]) -> None:
    reg = registry(repo)
    await reg.load("alpha")
    request_done = asyncio.Event()
    unloaded = asyncio.Event()

    async def request() -> None:
        with request_scope(RequestContext("r1")):
            reg.get("alpha").capability(Predictor)
            await request_done.wait()

    async def unload() -> None:
        await reg.unload("alpha")
        unloaded.set()

    in_flight = asyncio.create_task(request())
    await asyncio.sleep(0.01)
    unloading = asyncio.create_task(unload())
    await asyncio.sleep(0.05)
    assert not unloaded.is_set()
    entry = {e.name: e for e in await reg.index()}["alpha"]
    assert entry.state is ModelState.UNAVAILABLE and entry.reason == UNLOADING
    with pytest.raises(ModelNotReady):  # new requests are refused meanwhile
        reg.get("alpha").capability(Predictor)
    request_done.set()
    await asyncio.gather(in_flight, unloading)
    assert unloaded.is_set()


async def test_unload_waits_only_up_to_its_timeout(repo: Path, loads: list[str]) -> None:
    reg = registry(repo, drain_timeout=0.05)
    await reg.load("alpha")
    with request_scope(RequestContext("stuck")):
        reg.get("alpha")
        await reg.unload("alpha")  # the request never ends: cut off after 0.05 s
    assert reg.get("alpha").model is None


async def test_load_and_unload_of_one_model_serialise(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy: list[str] = []  # what runs now: never two at once

    class _Closing(_Model):
        async def aclose(self) -> None:
            assert not busy, busy
            busy.append("unload")
            await asyncio.sleep(0.01)
            busy.remove("unload")
            await super().aclose()

    async def fake_load(config: ModelConfig) -> LoadedModel:
        assert not busy, busy
        busy.append("load")
        await asyncio.sleep(0.01)
        busy.remove("load")
        return LoadedModel(_Closing(config.model_name))

    monkeypatch.setattr(loading, "load_model", fake_load)
    reg = registry(repo)
    await reg.load("alpha")
    calls = [reg.unload("alpha"), reg.load("alpha")] * 4
    await asyncio.gather(*calls)
    slot = reg.get("alpha")
    assert slot.ready == (slot.model is not None)


async def test_unloading_a_base_waits_for_its_adapters_requests(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def with_adapter(config: ModelConfig) -> LoadedModel:
        adapter = _Model(f"{config.model_name}-lora")
        return LoadedModel(_Model(config.model_name), (adapter,))

    monkeypatch.setattr(loading, "load_model", with_adapter)
    reg = registry(repo)
    await reg.load("alpha")
    assert reg.get("alpha-lora").ready
    request_done = asyncio.Event()

    async def request() -> None:
        with request_scope(RequestContext("r1")):
            reg.get("alpha-lora").capability(Predictor)
            await request_done.wait()

    in_flight = asyncio.create_task(request())
    await asyncio.sleep(0.01)
    unloading = asyncio.create_task(reg.unload("alpha"))
    await asyncio.sleep(0.05)
    assert not unloading.done()
    with pytest.raises(ModelNotReady):
        reg.get("alpha-lora").capability(Predictor)
    request_done.set()
    await asyncio.gather(in_flight, unloading)
    with pytest.raises(ModelNotFound):
        reg.get("alpha-lora")
    await reg.load("alpha")  # its adapter comes back with it
    assert reg.get("alpha-lora").ready


async def test_adapter_paths_need_the_operators_consent(repo: Path, loads: list[str]) -> None:
    # A client-given lora_path reads any folder the server can: off unless configured, while
    # the repository's own adapter folders still load by name (reaching the base-model check).
    reg = registry(repo)
    with pytest.raises(InvalidInput, match="allow_runtime_lora_paths") as refused:
        await reg.load_adapter("x", "/etc", None)
    assert refused.value.param == "lora_path"
    with pytest.raises(InvalidInput) as by_name:
        await reg.load_adapter("lora", None, None)
    assert "allow_runtime_lora_paths" not in str(by_name.value)
    allowed = registry(repo, allow_runtime_lora_paths=True)
    with pytest.raises(InvalidInput) as past_the_gate:
        await allowed.load_adapter("x", "/etc", None)
    assert "allow_runtime_lora_paths" not in str(past_the_gate.value)
