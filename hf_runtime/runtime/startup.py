"""Startup faults an operator can fix: fail at once, in one line, and never in a loop.

`bentoml serve` is a supervisor (circus): it imports service.py, binds the HTTP socket, then
starts the worker, which imports service.py again and serves. A worker that exits is started
again (`bentoml.serving.create_watcher`: `respawn` unless BENTOML_CONTAINERIZED is set), so a
failure that only the worker meets (the gRPC port in use) used to restart every few seconds,
forever. Here:
  - in the supervisor, before any worker starts, the configuration is read (as before) and both
    ports are tried: a failure is one line naming the cause and the setting to change, and exit
    code 2, with no traceback (`exit_on_startup_error`, `check_ports`);
  - the worker is never respawned (`never_respawn`): one worker holds the models, so a worker
    that exits (a failure only it meets, a dead engine, the end of a drain) ends the server with
    a non-zero code, for the operator or Kubernetes to act on, as in BentoML's own image.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from hf_runtime.config import RuntimeConfig
from hf_runtime.errors import ConfigError

logger = logging.getLogger("hf_runtime")

EXIT_STARTUP = 2  # a startup failure the operator fixes (configuration, ports)
EXIT_LOAD_FAILURE = 3  # a model failed to load and server.exit_on_load_failure is on
EXIT_ENGINE_DIED = 4  # a model's engine died while serving
T = TypeVar("T")

GRPC_PORT_HINT = (
    "set server.grpc_port (HF_RUNTIME_GRPC_PORT, --arg grpc_port=PORT) to a free port, or 0 to "
    "turn gRPC off"
)
HTTP_PORT_HINT = "pass a free port to bentoml serve --port (BENTOML_PORT)"


def fatal(message: str) -> NoReturn:
    """Say why the server cannot start, in one line, and exit with EXIT_STARTUP."""
    exit_process(EXIT_STARTUP, f"cannot start: {message}")


def exit_process(code: int, message: str) -> NoReturn:
    """Log `message` as one line and end this process with `code` at once. In the worker,
    BentoML's supervisor then exits too (`never_respawn`), with a non-zero code."""
    line = ""
    for part in filter(None, (p.strip() for p in message.splitlines())):
        line += (" " if line.endswith(":") else "; ") + part if line else part
    if logger.hasHandlers():  # the worker: hf_runtime's configured log format
        logger.critical("%s", line)
        logging.shutdown()
    else:  # the supervisor, before anything configured logging
        print(f"hf-runtime: {line}", file=sys.stderr, flush=True)
    sys.stderr.flush()
    kill_children()
    # os._exit, not sys.exit: in a worker, uvicorn's lifespan (or the event loop) would catch
    # SystemExit and print a traceback; callers have closed what needs closing.
    os._exit(code)


def exit_on_startup_error(build: Callable[[], T]) -> T:
    """`build()`, or `fatal` with the ConfigError's message (which names the key)."""
    try:
        return build()
    except ConfigError as exc:
        fatal(str(exc))


def never_respawn() -> None:
    """Make BentoML's supervisor end the server when its worker exits, instead of starting
    another into the same failure (read when `bentoml serve` creates the worker's watcher)."""
    os.environ.setdefault("BENTOML_CONTAINERIZED", "true")


def is_supervisor(argv: Sequence[str]) -> bool:
    """Whether this process is `bentoml serve` itself (not the worker it starts)."""
    return len(argv) > 1 and argv[1] == "serve" and "bentoml" in argv[0]  # or bentoml/__main__


def serve_address(argv: Sequence[str]) -> tuple[str, int]:
    """The HTTP host and port `bentoml serve` was given (flags, then its env vars, then its
    defaults)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-p", "--port", type=int, default=None)
    parser.add_argument("--host", default=None)
    known, _ = parser.parse_known_args(list(argv[2:]))
    host = known.host or os.environ.get("BENTOML_HOST") or BentoMLContainer.http.host.get()
    port = known.port or os.environ.get("BENTOML_PORT") or BentoMLContainer.http.port.get()
    return str(host), int(port)


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails because something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the real servers bind: SO_REUSEADDR on (TIME_WAIT is no conflict), no REUSEPORT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_ports(config: RuntimeConfig, argv: Sequence[str]) -> None:
    """In the supervisor: `fatal` when the HTTP or the gRPC port is taken, before any worker
    starts (BentoML would fail on HTTP with a traceback; the worker on gRPC, in a loop)."""
    if not is_supervisor(argv):
        return
    host, port = serve_address(argv)
    if port and port_in_use(host, port):
        fatal(f"the HTTP port {port} ({host}) is already in use: {HTTP_PORT_HINT}")
    server = config.server
    if server.grpc_port == 0:
        return
    grpc_host = server.grpc_host or host  # the worker binds HTTP's interface by default
    if server.grpc_port == port:
        fatal(f"server.grpc_port {port} is the HTTP port too: {GRPC_PORT_HINT}")
    if port_in_use(grpc_host, server.grpc_port):
        fatal(grpc_port_message(grpc_host, server.grpc_port))


def grpc_port_message(host: str, port: int) -> str:
    """Why host:port cannot be bound for gRPC, and what to change."""
    if port_in_use(host, port):
        return f"the gRPC port {port} ({host}) is already in use: {GRPC_PORT_HINT}"
    return f"the gRPC port {port} cannot be bound on {host}: {GRPC_PORT_HINT} (or server.grpc_host)"


def kill_children() -> None:
    """SIGKILL this process's children (an engine core still shutting down), best effort:
    os._exit skips the atexit hooks that would stop them."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            child.kill()
    except Exception:  # psutil missing, or a child already gone: nothing more to do
        logger.debug("could not end every child process", exc_info=True)
