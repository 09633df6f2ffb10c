"""Run a real `bentoml serve` of service.py for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hf_runtime.config import REPO_ROOT

# A deadline for a hung server, not a timing assertion: a loaded 2-core CI machine loading
# several models at once takes several times what an idle one does.
READY_TIMEOUT_S = 600.0
PORT_ATTEMPTS = 3
# What the server says (hf_runtime.runtime.startup) when its HTTP or gRPC port is taken.
PORT_TAKEN = re.compile(r"port \d+ \([^)]*\) is already in use|port \d+ cannot be bound")


def free_port(range_variable: str = "", exclude: int = 0) -> int:
    """A free 127.0.0.1 port other than `exclude`: from the range in the environment variable
    `range_variable` ("3700-3799") when it is set (shared machines that allot ports), else any
    the system picks."""
    allotted = os.environ.get(range_variable, "") if range_variable else ""
    if allotted:
        low, _, high = allotted.partition("-")
        candidates: Sequence[int] = range(int(low), int(high or low) + 1)
    else:
        candidates = [0] * 8
    for candidate in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        if port != exclude:
            return port
    raise RuntimeError(f"no free port in {allotted or 'the system range'}")


# HTTP base URL -> "host:port" of the same server's gRPC port ("" when off), for tests that
# get only the URL from `bentoml_serve` (the package's shared server among them).
GRPC_URLS: dict[str, str] = {}


def grpc_url_for(url: str) -> str:
    return GRPC_URLS[url]


@dataclass
class ServedProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    grpc_url: str = ""  # host:port, what tritonclient.grpc takes; "" when gRPC is off

    def worker_pid(self) -> int:
        """The BentoML worker serving the models (the `bentoml serve` process supervises it)."""
        import psutil

        for child in psutil.Process(self.process.pid).children(recursive=True):
            if "_bentoml_impl.worker" in " ".join(child.cmdline()):
                return child.pid
        raise RuntimeError("no BentoML worker process found")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def bentoml_serve(
    config_path: Path,
    *,
    args: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path,
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[str]:
    """Start `bentoml serve service:HFRuntime` on a free port; yield its base URL once ready."""
    with bentoml_serve_process(
        config_path, args=args, env=env, log_path=log_path, ready_timeout=ready_timeout
    ) as served:
        yield served.url


def start_bentoml_serve(
    config_path: Path,
    *,
    args: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path,
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start `bentoml serve service:HFRuntime` (on a free port unless `port`); returns the
    process, its base URL and its gRPC port, without waiting for anything."""
    port = port or free_port("E2E_HTTP_PORTS")
    grpc_port = free_port("E2E_GRPC_PORTS", exclude=port)
    command = [
        str(Path(sys.executable).parent / "bentoml"), "serve", "service:HFRuntime",
        "--host", "127.0.0.1", "--port", str(port), "--arg", f"config={config_path}",
    ]  # fmt: skip
    for key, value in (args or {}).items():
        command += ["--arg", f"{key}={value}"]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_RUNTIME_")}
    child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # bentoml serve manages its own
    # Its own BentoML home: servers side by side would otherwise share (and clear) one
    # Prometheus multiprocess directory and lose each other's histograms.
    child_env["BENTOML_HOME"] = str(log_path.parent / "bentoml-home")
    # A free gRPC port too: servers side by side would otherwise all try KServe's 8081.
    child_env["HF_RUNTIME_GRPC_PORT"] = str(grpc_port)
    child_env.update(env or {})
    grpc_port = int(child_env["HF_RUNTIME_GRPC_PORT"])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}", grpc_port


@contextmanager
def bentoml_serve_process(
    config_path: Path,
    *,
    args: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path,
    ready_timeout: float = READY_TIMEOUT_S,
    ready_path: str = "/readyz",
) -> Iterator[ServedProcess]:
    """Like `bentoml_serve`, yielding the process too (for signals and memory readings).
    `ready_path="/livez"`: yield once it listens, whatever its models do (a failed load is
    then no error)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        process, url, grpc_port = start_bentoml_serve(
            config_path, args=args, env=env, log_path=log_path
        )
        try:
            ready = _wait_ready(process, url, log_path, ready_timeout, ready_path)
        except BaseException:
            stop(process)
            raise
        if ready:
            break
        # A free port was taken by another process between our pick and the server's bind
        # (seconds for gRPC: the worker binds it after loading its models). Fresh ports.
        stop(process)
        if attempt == PORT_ATTEMPTS:
            raise RuntimeError(f"ports taken {attempt} times:\n{log_path.read_text()[-4000:]}")
    try:
        grpc_url = f"127.0.0.1:{grpc_port}" if grpc_port else ""
        GRPC_URLS[url] = grpc_url
        yield ServedProcess(url, process, log_path, grpc_url)
    finally:
        GRPC_URLS.pop(url, None)
        stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float, ready_path: str
) -> bool:
    """Poll until `ready_path` answers 200 (True), or the server lost a port it was given
    (False: start it again); raise when it failed otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        exited = process.poll() is not None
        log_text = log_path.read_text(errors="replace")
        if PORT_TAKEN.search(log_text):
            return False
        if exited:
            raise RuntimeError(f"bentoml serve exited:\n{log_text[-4000:]}")
        if ready_path == "/readyz" and "failed to load" in log_text:
            raise RuntimeError(f"a model failed to load:\n{log_text[-6000:]}")
        try:
            if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready in {timeout}s:\n{log_text[-4000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # workers outliving the supervisor too
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
