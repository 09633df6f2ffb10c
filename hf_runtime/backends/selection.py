"""Which backend runs a model: `select_backend(config, source, task) -> (backend, reason)`.

A configured backend (`backend: huggingface`, `backend: vllm`) is obeyed when it is installed,
serves the task and implements the checkpoint's architectures; otherwise it is a ConfigError.
`auto` asks the other backends, in registry order, whether they take the model, and keeps the
default (huggingface, which runs every task) when none does. Today that means vLLM for
generative tasks whose architectures vLLM implements, when vLLM is installed; encoder tasks
stay on huggingface under `auto`, because KServe's V1/V2 bodies for them need the huggingface
backend's exact outputs (vLLM serves only embeddings, classification and rerank, and needs
`backend: vllm` to do so); onnxruntime is never picked by `auto` (opt-in: its outputs are
not KServe-bit-exact). The reason given for keeping the default names every backend that
declined, in registry order. Nothing heavy is imported unless an installed backend must be asked
about architectures (vLLM: its model registry), which happens only for a task it may take.
"""

from __future__ import annotations

from hf_runtime.backends.registry import (
    DEFAULT_BACKEND,
    Backend,
    all_backends,
    get_backend,
    task_unavailable,
)
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

AUTO = "auto"


def _architectures(source: ResolvedSource) -> list[str]:
    value = source.hf_config.get("architectures") or []
    return [str(a) for a in value] if isinstance(value, list) else [str(value)]


def _unsupported(backend: Backend, architectures: list[str]) -> list[str] | None:
    """The architectures `backend` lacks; None when it takes any."""
    supported = backend.supported_architectures()
    if supported is None:
        return None
    return [a for a in architectures if a not in supported]


def select_backend(config: ModelConfig, source: ResolvedSource, task: Task) -> tuple[str, str]:
    """(backend, reason). Raises ConfigError when a configured backend cannot be honoured."""
    architectures = _architectures(source)
    arch_text = ", ".join(architectures) or "(no architectures in config.json)"
    if config.backend != AUTO:
        return _configured(config, task, architectures, arch_text)
    reasons: list[str] = []
    for backend in all_backends():
        if backend.name == DEFAULT_BACKEND:
            continue
        reason = backend.auto_declines(task) or _auto_refusal(backend, task, architectures)
        if not reason:
            return backend.name, f"auto: {backend.label} is installed and implements {arch_text}"
        reasons.append(reason)
    return DEFAULT_BACKEND, "; ".join(reasons) or f"auto: no backend but {DEFAULT_BACKEND}"


def _configured(
    config: ModelConfig, task: Task, architectures: list[str], arch_text: str
) -> tuple[str, str]:
    backend = get_backend(config.backend)
    prefix = f"model {config.model_name}: backend: {backend.name}, but"
    if not backend.installed():
        raise ConfigError(f"{prefix} {backend.install_hint}")
    reason = backend.unsupported_reason(task)
    if reason is not None:
        raise task_unavailable(config, backend, task, reason)
    unsupported = _unsupported(backend, architectures)
    if unsupported is not None and (unsupported or not architectures):
        raise ConfigError(
            f"{prefix} {backend.label} does not implement {', '.join(unsupported) or arch_text}; "
            f"set backend: {DEFAULT_BACKEND} (or auto)"
        )
    return backend.name, f"backend: {backend.name} is configured"


def _auto_refusal(backend: Backend, task: Task, architectures: list[str]) -> str | None:
    """Why `auto` does not give this model to `backend`, or None when it does."""
    if not backend.installed():
        return f"auto: {backend.label} is not installed"
    reason = backend.unsupported_reason(task)
    if reason is not None:
        return f"auto: {backend.label} does not serve {task.value}: {reason}"
    if not architectures:
        return f"auto: config.json names no architecture to look up in {backend.label}"
    unsupported = _unsupported(backend, architectures)
    if unsupported:
        return f"auto: {backend.label} does not implement {', '.join(unsupported)}"
    return None
