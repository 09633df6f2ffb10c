"""`load_vllm`: check a model's settings, start its vLLM engine, return the parts to serve it.

Generative tasks get a `VLLMGenerationEngine` (plus one view of it per configured LoRA adapter),
the tokenizer and the chat template; encoder tasks a `VLLMEncoderBackend` on the pooling
runner. The runtime builds the same served models around them as around the huggingface
backend's, so tokenizing, chat templates and KServe's bodies follow one set of rules. This
module imports vLLM only inside the engine-starting thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hf_runtime.backends import BackendParts, EncoderParts, GenerationParts, LoRAAdapter
from hf_runtime.backends.generation_defaults import checked_sampling_defaults
from hf_runtime.backends.registry import task_unavailable
from hf_runtime.backends.tokenizer_rules import encoder_max_length, read_chat_template
from hf_runtime.backends.vllm import BACKEND, VLLM_INSTALL_HINT, vllm_installed
from hf_runtime.backends.vllm.config import (
    VLLMEngineConfig,
    parse_vllm_section,
    reject_huggingface_only_options,
)
from hf_runtime.backends.vllm.env import apply_env_defaults, is_cpu_build
from hf_runtime.backends.vllm.tasks import unsupported_reason
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

logger = logging.getLogger("hf_runtime")

PLATFORM = BACKEND.name


async def load_vllm(config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
    """Start a vLLM engine for this model (off the event loop); ConfigError for bad settings.

    The engine's output handler runs on the calling event loop, which must be the loop that
    serves the model's requests.
    """
    engine_config = parse_vllm_section(config.vllm, config.model_name)
    reject_huggingface_only_options(config)
    if not vllm_installed():
        raise ConfigError(f"model {config.model_name}: backend: vllm, but {VLLM_INSTALL_HINT}")
    reason = unsupported_reason(task)
    if reason is not None:
        raise task_unavailable(config, BACKEND, task, reason)
    chat_template = read_chat_template(config.generation.chat_template)
    for module in engine_config.lora_modules:
        if not (Path(module.path) / "adapter_config.json").is_file():
            raise ConfigError(
                f"model {config.model_name}: vllm.lora_modules {module.name}: no "
                f"adapter_config.json in {module.path}"
            )

    cpu_build = is_cpu_build()
    apply_env_defaults(engine_config, cpu_build=cpu_build)  # before vLLM reads them
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(
        _build, config, source, task, engine_config, cpu_build, loop, chat_template
    )


def _build(
    config: ModelConfig,
    source: ResolvedSource,
    task: Task,
    engine_config: VLLMEngineConfig,
    cpu_build: bool,
    loop: asyncio.AbstractEventLoop,
    chat_template: str | None,
) -> BackendParts:
    import transformers

    from hf_runtime.backends.vllm.async_llm import build_engine_args, create_engine

    runner = "generate" if task.is_generative else "pooling"
    view = None if task.is_generative else checkpoint_without_st_dense(source.model_path)
    engine_source = source if view is None else replace(source, model_path=Path(view.name))
    engine_args = build_engine_args(
        config, engine_source, engine_config, runner, cpu_build=cpu_build
    )
    try:
        engine = create_engine(config, engine_args)
    except BaseException:
        if view is not None:
            view.cleanup()
        raise
    try:
        if task.is_generative:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source.tokenizer_path, trust_remote_code=config.trust_remote_code
            )
            parts: BackendParts = _generation(
                config, engine, tokenizer, engine_config, chat_template
            )
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source.tokenizer_path,
                do_lower_case=not config.disable_lower_case,  # as KServe (and our HF backend)
                trust_remote_code=config.trust_remote_code,
            )
            parts = _encoder(config, task, engine, tokenizer, loop, view)
    except BaseException:
        engine.shutdown()
        if view is not None:
            view.cleanup()
        raise
    logger.info(
        "model %s: %s on vLLM (%s runner), max_model_len %d, %s",
        config.model_name, task.value, runner, engine.model_config.max_model_len,
        engine_args.dtype,
    )  # fmt: skip
    return parts


def _generation(
    config: ModelConfig,
    engine: Any,
    tokenizer: Any,
    engine_config: VLLMEngineConfig,
    chat_template: str | None,
) -> GenerationParts:
    from vllm.lora.request import LoRARequest

    from hf_runtime.backends.vllm.generation_engine import VLLMGenerationEngine

    generation_engine = VLLMGenerationEngine(
        engine,
        tokenizer,
        name=config.model_name,
        max_queue_size=config.generation.max_queue_size,
    )
    adapters = tuple(
        LoRAAdapter(
            module.name,
            generation_engine.for_adapter(
                LoRARequest(lora_name=module.name, lora_int_id=index, lora_path=module.path)
            ),
        )
        for index, module in enumerate(engine_config.lora_modules, start=1)
    )
    # vLLM's own rule (--generation-config auto, and any override_generation_config in
    # vllm.engine_args), checked like the huggingface backend's; generation.sampling_defaults
    # and default_max_tokens are laid over it there, as on that backend.
    sampling_defaults = checked_sampling_defaults(
        config, engine.model_config.get_diff_sampling_param
    )
    return GenerationParts(
        PLATFORM,
        generation_engine,
        tokenizer,
        chat_template=chat_template,
        adapters=adapters,
        sampling_defaults=sampling_defaults,
    )


def checkpoint_without_st_dense(model_path: Path) -> tempfile.TemporaryDirectory[str] | None:
    """For a checkpoint whose modules.json lists a sentence-transformers Dense: a folder of
    links to its files but modules.json, for the pooling engine to load. vLLM applies such a
    Dense to every token's hidden state, before our pooling (sentence-transformers applies it
    to the pooled vector, which the huggingface backend and `sentence_head` do); without
    modules.json the engine returns the raw states. None when there is no Dense."""
    modules_file = model_path / "modules.json"
    try:
        modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
    except (OSError, ValueError):
        return None  # the task processor reports an unreadable modules.json
    if not isinstance(modules, list) or not any(
        isinstance(m, dict) and str(m.get("type", "")).endswith(".Dense") for m in modules
    ):
        return None
    view = tempfile.TemporaryDirectory(prefix="hf-runtime-vllm-checkpoint-")
    for entry in model_path.iterdir():
        if entry.name != "modules.json":
            (Path(view.name) / entry.name).symlink_to(entry.resolve())
    return view


def _encoder(
    config: ModelConfig,
    task: Task,
    engine: Any,
    tokenizer: Any,
    loop: asyncio.AbstractEventLoop,
    checkpoint_view: tempfile.TemporaryDirectory[str] | None = None,
) -> EncoderParts:
    from hf_runtime.backends.vllm.encoder_backend import VLLMEncoderBackend

    if config.tensor_input_names or config.return_token_type_ids:
        logger.warning(
            "model %s: tensor_input_names / return_token_type_ids have no effect on the vllm "
            "backend (vLLM builds the model inputs itself)",
            config.model_name,
        )
    max_length = encoder_max_length(
        int(engine.model_config.max_model_len), tokenizer, config.max_model_len
    )
    encoder = VLLMEncoderBackend(
        engine,
        tokenizer,
        loop,
        task=task,
        max_length=max_length,
        add_special_tokens=not config.disable_special_tokens,
        name=config.model_name,
        checkpoint_view=checkpoint_view,
    )
    return EncoderParts(PLATFORM, encoder)
