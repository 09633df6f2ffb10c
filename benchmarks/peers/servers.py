"""Start the servers under test as subprocesses on free loopback ports, and stop them.

`serve_process` is generic (any command that takes a port and answers a readiness route);
the `*_command` helpers build the three servers the benchmark compares.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from benchmarks.core.settings import REPO_ROOT

HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 600.0  # the first start converts SmolLM2's GGUF to safetensors
# hf-runtime keeps serving (503) when a model fails to load; its log says so at once.
HF_RUNTIME_LOAD_FAILED = "failed to load"
# The encoder runs measure HTTP; a gRPC port would also collide between servers of one run.
NO_GRPC = {"HF_RUNTIME_GRPC_PORT": "0"}
# Its sitecustomize records the threads Python starts in a server (core/thread_cpu.py).
THREAD_NAMES_HOOK = Path(__file__).resolve().parent / "thread_names"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _venv_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment minus anything that would reconfigure the server behind our back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_RUNTIME_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # bentoml serve manages its own
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra or {})
    return env


def _tail(log_path: Path, chars: int = 4000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int
    thread_names_dir: Path | None = None  # where the server's Python threads are recorded

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used so far by the server and every live descendant (BentoML
        runs its workers in sessions of their own): what the server spends, to set against the
        load generator's own. None off Linux."""
        return process_tree_cpu_seconds(self.pid)


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime in clock ticks) for every process in /proc."""
    stats: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces; the fields after ")" do not.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        # After ")": [0] state, [1] ppid, ..., [11] utime, [12] stime.
        stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


def process_tree_cpu_seconds(root: int) -> float | None:
    if not Path("/proc").is_dir():
        return None
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve_process(
    make_command: Callable[[int], Sequence[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/readyz",
    ready_timeout: float = 300.0,
    fail_marker: str | None = None,
    cwd: Path | None = None,
    thread_names_dir: Path | None = None,
) -> Iterator[RunningServer]:
    """Run `make_command(port)`; once `ready_path` answers 200 yield it (its URL and CPU use),
    then stop it.

    `fail_marker`: text that, once in the server's log, means it will never become ready (so
    we stop waiting at once). The child gets its own process group so that everything it
    forks (BentoML runs an arbiter and workers) stops with it. `thread_names_dir`: record its
    Python threads there (thread_names_env).
    """
    port = free_port()
    if thread_names_dir is not None:
        env = thread_names_env(thread_names_dir, env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(make_command(port)),
            cwd=cwd or REPO_ROOT,
            env=child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited with status {process.returncode} (log: {log_path})\n"
                    + _tail(log_path)
                )
            if fail_marker and fail_marker in _tail(log_path, 1_000_000):
                raise RuntimeError(
                    f"server reported {fail_marker!r} (log: {log_path})\n" + _tail(log_path)
                )
            try:
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready in {ready_timeout:.0f} s (log: {log_path})\n" + _tail(log_path)
                )
            time.sleep(0.5)
        yield RunningServer(url, process.pid, thread_names_dir)
    finally:
        _stop(process)


def thread_names_env(names_dir: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """`env` plus the thread-recording hook ahead of its (or this process's) PYTHONPATH."""
    names_dir.mkdir(parents=True, exist_ok=True)
    for old in names_dir.iterdir():  # a previous server's threads
        old.unlink()
    env = dict(env or {})
    path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(THREAD_NAMES_HOOK), path) if p)
    env["BENCH_THREAD_NAMES_DIR"] = str(names_dir)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def hf_runtime_command(
    config_path: Path, args: Mapping[str, str] | None = None
) -> Callable[[int], list[str]]:
    """`bentoml serve service:HFRuntime` with a config file and extra `--arg key=value`s."""

    def command(port: int) -> list[str]:
        argv = [
            _venv_tool("bentoml"),
            "serve",
            "service:HFRuntime",
            "--host",
            HOST,
            "--port",
            str(port),
            "--arg",
            f"config={config_path}",
        ]
        for key, value in (args or {}).items():
            argv += ["--arg", f"{key}={value}"]
        return argv

    return command


def baseline_command(dtype: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks.peers.baseline_server",
            "--port",
            str(port),
            "--dtype",
            dtype,
        ]

    return command


def bentoml_batching_command() -> Callable[[int], list[str]]:
    """The BentoML adaptive-batching variant; its dtype comes from BENCH_DTYPE in `env`."""

    def command(port: int) -> list[str]:
        return [
            _venv_tool("bentoml"),
            "serve",
            "benchmarks.peers.bentoml_batching_service:MiniLMBentoBatching",
            "--host",
            HOST,
            "--port",
            str(port),
        ]

    return command


def config_subset(config_path: Path, model_names: Sequence[str], out_path: Path) -> Path:
    """Write a copy of a runtime config that serves only `model_names` (faster to start)."""
    data = yaml.safe_load(config_path.read_text()) or {}
    models = [m for m in data.get("models") or [] if m.get("model_name") in model_names]
    missing = set(model_names) - {m.get("model_name") for m in models}
    if missing:
        raise ValueError(f"{config_path} serves no model named {sorted(missing)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return out_path


def source_tree(ref: str, out_dir: Path) -> Path:
    """The server's sources (hf_runtime, service.py, configs) at git `ref`, extracted under
    `out_dir` with `git archive` (the working tree and git state are left alone)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=REPO_ROOT,
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = out_dir / f"tree-{commit[:12]}"
    if not (tree / "service.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "hf_runtime", "service.py", "configs"], cwd=REPO_ROOT,
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def floor_bentoml_command() -> Callable[[int], list[str]]:
    """The trivial route in `bentoml serve` (its mode from BENCH_FLOOR_MODE in `env`)."""

    def command(port: int) -> list[str]:
        return [
            _venv_tool("bentoml"), "serve", "benchmarks.peers.floor_service:TrivialService",
            "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    return command


def floor_uvicorn_command() -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "benchmarks.peers.floor", "--port", str(port)]

    return command
