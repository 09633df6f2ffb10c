"""Which task a checkpoint is, from its `architectures` (as KServe infers it) and, for tasks
that refine another (TaskSpec.refines), the checkpoint's own files."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hf_runtime.tasks.registry import infer_task_name, refinements


def infer_checkpoint_task(model_path: Path, hf_config: dict[str, Any]) -> str | None:
    """The inferred task's name (possibly one hf_runtime does not serve, so that the error can
    name it), or None when the architecture says nothing."""
    architectures = hf_config.get("architectures") or []
    name = infer_task_name(architectures[0]) if architectures else None
    for spec in refinements(name) if name else []:
        assert spec.detector is not None, spec.task  # refines is declared with a detector
        module, function = spec.detector.split(":")
        if getattr(importlib.import_module(module), function)(model_path, hf_config):
            return spec.task.value
    return name
