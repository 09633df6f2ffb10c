"""Composition root for one model: source -> task -> backend -> ServedModel."""

from __future__ import annotations

import asyncio
import logging

from hf_runtime.backends.selection import select_backend
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.model import ServedModel
from hf_runtime.sources import ResolvedSource, resolve_source
from hf_runtime.tasks.names import SUPPORTED_TASKS, Task, infer_task_name

logger = logging.getLogger("hf_runtime")


def resolve_task(config: ModelConfig, source: ResolvedSource) -> Task:
    """The configured task, else the one inferred from `architectures` (as KServe does)."""
    architectures = source.hf_config.get("architectures") or []
    inferred_name = infer_task_name(architectures[0]) if architectures else None
    if config.task is not None:
        if inferred_name and inferred_name != config.task.value:
            logger.warning(
                "model %s: task %s was configured but the architecture %s suggests %s",
                config.model_name, config.task.value, architectures[0], inferred_name,
            )  # fmt: skip
        return config.task
    if inferred_name is None:
        arch = architectures[0] if architectures else "(no architectures in config.json)"
        raise ConfigError(
            f"model {config.model_name}: task couldn't be inferred from {arch}; set `task` "
            f"(one of: {SUPPORTED_TASKS}). A bare encoder needs task: text_embedding."
        )
    try:
        return Task(inferred_name)
    except ValueError:
        raise ConfigError(
            f"model {config.model_name}: task {inferred_name} is not supported; "
            f"supported tasks are: {SUPPORTED_TASKS}"
        ) from None


async def load_model(config: ModelConfig) -> ServedModel:
    source = await asyncio.to_thread(resolve_source, config)
    task = resolve_task(config, source)
    backend, reason = select_backend(config, source, task)
    logger.info(
        "model %s: task %s, backend %s (%s), from %s", config.model_name, task.value, backend,
        reason, source.description,
    )  # fmt: skip
    if backend == "vllm":
        from hf_runtime.backends.vllm.model import load_vllm_model

        return await load_vllm_model(config, source, task)
    if task.is_generative:
        from hf_runtime.runtime.generative import load_generative_model

        return await load_generative_model(config, source, task)
    from hf_runtime.runtime.encoder import load_encoder_model

    return await load_encoder_model(config, source, task)
