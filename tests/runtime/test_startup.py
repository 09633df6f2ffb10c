"""Startup faults fail at once, in one line naming the setting, with a non-zero exit code;
BentoML's supervisor never restarts the worker into the same failure."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.config import load_config
from hf_runtime.errors import ConfigError
from hf_runtime.runtime import startup
from hf_runtime.runtime.server import Runtime

SUPERVISOR = ["/venv/bin/bentoml", "serve", "service:HFRuntime", "--host", "127.0.0.1"]


class Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """os._exit raises Exited instead of ending pytest."""

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(startup.os, "_exit", fake_exit)
    monkeypatch.setattr(startup, "kill_children", lambda: None)  # pytest's are not ours


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the exit logged (pytest's handler stands in for the worker's), then forget it."""
    lines = [record.getMessage() for record in caplog.records]
    caplog.clear()
    assert all("\n" not in line for line in lines)
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config(grpc_port: int) -> Any:
    return load_config(args={"model_dir": "/m", "grpc_port": str(grpc_port)}, env={})


def test_only_the_supervisor_is_recognised() -> None:
    assert startup.is_supervisor(SUPERVISOR)
    assert startup.is_supervisor(
        ["/venv/lib/python3.11/site-packages/bentoml/__main__.py", "serve"]
    )
    assert not startup.is_supervisor(["/venv/bin/python", "-m", "_bentoml_impl.worker.service"])
    assert not startup.is_supervisor(["/venv/bin/pytest", "serve"])


def test_serve_address_reads_flags_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENTOML_PORT", raising=False)
    assert startup.serve_address([*SUPERVISOR, "--port", "3111"]) == ("127.0.0.1", 3111)
    assert startup.serve_address([*SUPERVISOR, "-p", "3112"]) == ("127.0.0.1", 3112)
    monkeypatch.setenv("BENTOML_PORT", "3113")
    assert startup.serve_address(SUPERVISOR[:3])[1] == 3113


@pytest.mark.usefixtures("exits")
def test_a_taken_grpc_port_is_one_line_and_exit_2(
    taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    argv = [*SUPERVISOR, "--port", str(free_port())]
    with pytest.raises(Exited) as exited:
        startup.check_ports(config(taken_port), argv)
    assert exited.value.code == startup.EXIT_STARTUP
    (line,) = said(caplog)
    assert f"gRPC port {taken_port} (127.0.0.1) is already in use" in line
    assert "server.grpc_port" in line and "HF_RUNTIME_GRPC_PORT" in line


@pytest.mark.usefixtures("exits")
def test_a_taken_http_port_is_one_line_and_exit_2(
    taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(Exited) as exited:
        startup.check_ports(config(free_port()), [*SUPERVISOR, "--port", str(taken_port)])
    assert exited.value.code == startup.EXIT_STARTUP
    (line,) = said(caplog)
    assert f"HTTP port {taken_port}" in line and "--port" in line


def test_free_ports_and_the_worker_pass(taken_port: int) -> None:
    startup.check_ports(config(free_port()), [*SUPERVISOR, "--port", str(free_port())])
    startup.check_ports(config(0), [*SUPERVISOR, "--port", str(free_port())])  # gRPC off
    worker = ["/venv/bin/python", "-m", "_bentoml_impl.worker.service"]
    startup.check_ports(config(taken_port), worker)  # the worker binds for real instead


@pytest.mark.usefixtures("exits")
def test_a_config_error_is_one_line_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("models: [{model_name: x, model_dir: /m, bogus: 1}]\n")
    with pytest.raises(Exited) as exited:
        startup.exit_on_startup_error(lambda: Runtime.from_sources({"config": str(bad)}))
    assert exited.value.code == startup.EXIT_STARTUP
    (line,) = said(caplog)
    assert "cannot start: invalid configuration" in line and "models.0.bogus: unknown key" in line
    for unreadable, why in [(tmp_path, "cannot be read"), (tmp_path / "nope.yaml", "not found")]:
        with pytest.raises(Exited):
            startup.exit_on_startup_error(
                lambda: Runtime.from_sources({"config": str(unreadable)})  # noqa: B023
            )
        (line,) = said(caplog)
        assert why in line and "HF_RUNTIME_CONFIG" in line


def test_never_respawn_turns_bentomls_respawn_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from bentoml import serving

    monkeypatch.delenv("BENTOML_CONTAINERIZED", raising=False)
    serving.running_inside_container.cache_clear()
    startup.never_respawn()
    try:
        assert os.environ["BENTOML_CONTAINERIZED"]
        watcher = serving.create_watcher("worker", ["-c", "pass"])
        assert watcher.respawn is False
    finally:
        serving.running_inside_container.cache_clear()


def test_a_grpc_port_taken_in_the_worker_is_a_config_error(taken_port: int) -> None:
    runtime = Runtime.from_sources({"model_dir": "/m", "grpc_port": str(taken_port)})

    async def start() -> None:
        await runtime._start_grpc(["127.0.0.1:3000"])

    with pytest.raises(ConfigError, match=f"gRPC port {taken_port} .* already in use"):
        asyncio.run(start())


@pytest.mark.usefixtures("exits")
@pytest.mark.parametrize("exit_on_load_failure", [False, True])
def test_a_failed_load_exits_only_when_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, exit_on_load_failure: bool
) -> None:
    """An empty folder: FAILED with its reason; with server.exit_on_load_failure the process
    exits with code 3 after one line naming the model and the setting."""
    args = {"model_dir": str(tmp_path), "model_name": "empty"}
    runtime = Runtime.from_sources({**args, "exit_on_load_failure": str(exit_on_load_failure)})
    if not exit_on_load_failure:
        asyncio.run(runtime._load())
        status = runtime.registry.get("empty").status()
        assert status.state.value == "FAILED" and status.reason.startswith("Loading failed: ")
        assert not runtime.ready
        return
    with pytest.raises(Exited) as exited:
        asyncio.run(runtime._load())
    assert exited.value.code == startup.EXIT_LOAD_FAILURE
    assert "model(s) empty failed to load; exiting (server.exit_on_load_failure)" in said(caplog)
