"""The task processor for an encoder model, built by its task's module (see tasks.registry)."""

from __future__ import annotations

import importlib
from pathlib import Path

from hf_runtime.backends import EncoderBackend
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions
from hf_runtime.tasks.registry import Task


def make_processor(
    task: Task, backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> EncoderTaskProcessor:
    """The task processor for an encoder task (imports only its own task module).
    `model_path` is the checkpoint folder, where some tasks read their settings (labels,
    pooling modes)."""
    module = task.spec.module
    if module is None:
        raise ConfigError(f"task {task.value} is not an encoder task")
    processor: EncoderTaskProcessor = importlib.import_module(module).build_processor(
        backend, options, model_path
    )
    return processor
