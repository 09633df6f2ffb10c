"""The backends that exist, what each one offers, and its loader, without importing any of them.

Each backend package (`hf_runtime.backends.<name>`) declares one `Backend` as `BACKEND` in its
`__init__`, which imports nothing heavy: answering which tasks it serves, whether it is
installed, or whether its configuration section is valid must not start torch or vLLM. Only
`Backend.load` imports the backend's heavy modules, when a model of that kind loads.

The runtime reaches backends only through this module (and `selection`): it never imports a
backend package itself. Adding a backend is a new package plus one line in `BACKEND_PACKAGES`.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from hf_runtime.backends import BackendParts
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

# Registry order is the order `backend: auto` asks the backends other than the default.
BACKEND_PACKAGES: dict[str, str] = {
    "huggingface": "hf_runtime.backends.huggingface",
    "vllm": "hf_runtime.backends.vllm",
    "onnxruntime": "hf_runtime.backends.onnxruntime",
}
# Runs every task, needs nothing beyond the core dependencies: where `auto` falls back to.
DEFAULT_BACKEND = "huggingface"


class Backend(Protocol):
    """One backend as the runtime sees it. No method imports a heavy library but `load`."""

    name: str  # what `backend:` says, and the platform its models report
    label: str  # how messages name it ("vLLM")
    install_hint: str  # how to install it, for "not installed" errors

    def installed(self) -> bool:
        """Whether its libraries can be imported (checked without importing them)."""

    def supported_architectures(self) -> frozenset[str] | None:
        """The `architectures` it implements; None when it takes whatever transformers loads.
        May import the backend's library (vLLM's model registry): ask only when installed."""

    def unsupported_reason(self, task: Task) -> str | None:
        """Why it cannot serve `task`, or None when it can."""

    def auto_declines(self, task: Task) -> str | None:
        """Why `backend: auto` never picks it for `task` (the reason logged), or None when auto
        may pick it. Asked of every backend but the default."""

    def validate_config(self, config: ModelConfig) -> None:
        """Check its own section of a model's configuration (e.g. `vllm:`); ConfigError."""

    def with_drain_timeout(self, config: ModelConfig, seconds: int) -> ModelConfig:
        """`config` with the server's drain time given to the backend's engine, if it has one
        that handles SIGTERM on its own."""

    async def load(self, config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
        """Load the model for `task` off the event loop; ConfigError for unusable settings.
        Called on the event loop that will serve the model's requests."""


def get_backend(name: str) -> Backend:
    """The backend called `name` (imports its package, which imports nothing heavy)."""
    try:
        package = BACKEND_PACKAGES[name]
    except KeyError:
        known = ", ".join(BACKEND_PACKAGES)
        raise ConfigError(f"backend {name!r} does not exist; known backends: {known}") from None
    backend: Backend = importlib.import_module(package).BACKEND
    return backend


def all_backends() -> list[Backend]:
    return [get_backend(name) for name in BACKEND_PACKAGES]


def validate_backend_sections(config: ModelConfig) -> None:
    """Every backend checks its own section of `config`, so a typo fails at startup."""
    for backend in all_backends():
        backend.validate_config(config)


def with_drain_timeout(config: ModelConfig, seconds: int) -> ModelConfig:
    """`config` with the server's drain time handed to every backend's engine that needs it."""
    for backend in all_backends():
        config = backend.with_drain_timeout(config, seconds)
    return config


def task_unavailable(config: ModelConfig, backend: Backend, task: Task, reason: str) -> ConfigError:
    """The error for a backend configured for a task it does not serve."""
    return ConfigError(
        f"model {config.model_name}: task {task.value} is not available on the {backend.name} "
        f"backend: {reason}; use backend: {DEFAULT_BACKEND}"
    )
