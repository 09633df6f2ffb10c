"""Load a model on a named backend and compose its served model, as the runtime does."""

from __future__ import annotations

import asyncio
from typing import Any

from hf_runtime.backends.huggingface.loader import load_encoder_parts, load_generation_parts
from hf_runtime.config import ModelConfig
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.runtime.generative_model import GenerativeModel
from hf_runtime.runtime.loading import compose, load_served_model
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task


async def load_on(backend: str, config: ModelConfig, source: ResolvedSource, task: Task) -> Any:
    """The served model (an EncoderModel or a GenerativeModel) for `task` on `backend`."""
    return (await load_served_model(config, source, task, backend)).model


async def load_encoder_model(
    config: ModelConfig, source: ResolvedSource, task: Task
) -> EncoderModel:
    """An encoder-task model on the huggingface backend; ConfigError for a generative task."""
    parts = await asyncio.to_thread(load_encoder_parts, config, source, task)
    model = (await compose(config, source, task, parts)).model
    assert isinstance(model, EncoderModel)
    return model


async def load_generative_model(
    config: ModelConfig, source: ResolvedSource, task: Task
) -> GenerativeModel:
    """A generative model on the huggingface backend; ConfigError for an encoder task."""
    parts = await asyncio.to_thread(load_generation_parts, config, source, task)
    model = (await compose(config, source, task, parts)).model
    assert isinstance(model, GenerativeModel)
    return model
