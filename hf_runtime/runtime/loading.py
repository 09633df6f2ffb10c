"""Composition root for one model: source -> task -> backend -> parts -> ServedModel.

A backend's loader (`hf_runtime.backends.registry`) returns plain parts; the served models
are composed here, the same way on every backend: an `EncoderModel` (task processor + batcher)
over any `EncoderBackend`, a `GenerativeModel` (tokenizing, chat templates) over any
`GenerationEngine`, plus one GenerativeModel per LoRA adapter the loader returned.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from hf_runtime.backends import BackendParts, EncoderParts, GenerationEngine, GenerationParts
from hf_runtime.backends.registry import get_backend
from hf_runtime.backends.selection import select_backend
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.model import ServedModel
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.runtime.generative_model import GenerativeModel
from hf_runtime.sources import ResolvedSource, resolve_source
from hf_runtime.tasks.base import ProcessorOptions
from hf_runtime.tasks.inference import infer_checkpoint_task
from hf_runtime.tasks.processors import make_processor
from hf_runtime.tasks.registry import SUPPORTED_TASKS, Task

logger = logging.getLogger("hf_runtime")


@dataclass(frozen=True)
class LoadedModel:
    """A served model, and the LoRA adapters served under their own names on its engine."""

    model: ServedModel
    adapters: tuple[ServedModel, ...] = ()


def resolve_task(config: ModelConfig, source: ResolvedSource) -> Task:
    """The configured task, else the one the checkpoint is inferred to be (tasks.inference:
    from `architectures`, as KServe does, refined by the checkpoint's own files)."""
    architectures = source.hf_config.get("architectures") or []
    inferred_name = infer_checkpoint_task(source.model_path, source.hf_config)
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


async def load_model(config: ModelConfig) -> LoadedModel:
    source = await asyncio.to_thread(resolve_source, config)
    task = resolve_task(config, source)
    backend, reason = select_backend(config, source, task)
    logger.info(
        "model %s: task %s, backend %s (%s), from %s", config.model_name, task.value, backend,
        reason, source.description,
    )  # fmt: skip
    return await load_served_model(config, source, task, backend)


async def load_served_model(
    config: ModelConfig, source: ResolvedSource, task: Task, backend: str
) -> LoadedModel:
    """Load `task` on the named backend and compose what is served. Call it on the event loop
    that will serve the model (vLLM's output handler lives there)."""
    parts = await get_backend(backend).load(config, source, task)
    return await compose(config, source, task, parts)


async def compose(
    config: ModelConfig, source: ResolvedSource, task: Task, parts: BackendParts
) -> LoadedModel:
    """The served model(s) over a backend's loaded parts."""
    if isinstance(parts, EncoderParts):
        return LoadedModel(await _encoder_model(config, source, task, parts))
    return _generative_models(config, task, parts)


async def _encoder_model(
    config: ModelConfig, source: ResolvedSource, task: Task, parts: EncoderParts
) -> EncoderModel:
    options = ProcessorOptions.from_config(config)
    try:
        # In a thread: a processor may read its settings from the checkpoint folder.
        processor = await asyncio.to_thread(
            make_processor, task, parts.encoder, options, source.model_path
        )
    except BaseException:
        await parts.encoder.aclose()
        raise
    return EncoderModel(config, task, parts.encoder, processor, platform=parts.platform)


def _generative_models(config: ModelConfig, task: Task, parts: GenerationParts) -> LoadedModel:
    def served(model_config: ModelConfig, engine: GenerationEngine) -> GenerativeModel:
        return GenerativeModel(
            model_config,
            task,
            parts.tokenizer,
            engine,
            platform=parts.platform,
            chat_template=parts.chat_template,
            sampling_defaults=parts.sampling_defaults,  # adapters: the base model's, as vLLM
        )

    model = served(config, parts.engine)
    model.adapters = tuple(
        served(config.model_copy(update={"model_name": adapter.name}), adapter.engine)
        for adapter in parts.adapters
    )
    return LoadedModel(model, model.adapters)
