"""`load_vllm_model`: a ServedModel whose generation or pooling runs on vLLM.

Generative tasks get `VLLMGenerativeModel`: the huggingface backend's `GenerativeModel`
(tokenizing, chat templates, detokenize: the same rules on both backends) over a
`VLLMGenerationEngine`. Encoder tasks get `VLLMEncoderModel`: the huggingface backend's
`EncoderModel` (task processors, KServe-exact V1/V2 bodies, embeddings) over a
`VLLMEncoderBackend`. This module imports vLLM only inside `load_vllm_model`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_runtime.backends.selection import VLLM_INSTALL_HINT, vllm_installed
from hf_runtime.backends.vllm.config import VLLMEngineConfig, parse_vllm_section
from hf_runtime.backends.vllm.env import apply_env_defaults, is_cpu_build
from hf_runtime.backends.vllm.tasks import unsupported_reason
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.runtime.encoder import EncoderModel, make_processor
from hf_runtime.runtime.generative import GenerativeModel
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.base import ProcessorOptions
from hf_runtime.tasks.names import Task

if TYPE_CHECKING:
    from hf_runtime.backends.vllm.pooling import VLLMEncoderBackend

logger = logging.getLogger("hf_runtime")

PLATFORM = "vllm"
# Tokenizers report a huge sentinel (int(1e30)) when they know no limit.
_NO_TOKENIZER_LIMIT = 1_000_000


class VLLMGenerativeModel(GenerativeModel):
    """A generative model on vLLM. `adapters` are the configured LoRA models, each served
    under its own name on this model's engine."""

    def __init__(self, *args: Any, owns_engine: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, platform=PLATFORM, **kwargs)
        self._owns_engine = owns_engine
        self.adapters: list[VLLMGenerativeModel] = []

    @property
    def ready(self) -> bool:
        return self._ready and self.engine.ready

    def stats(self) -> dict[str, int]:
        """The shared engine's counts, reported once: by the model that owns the engine, not
        again by each LoRA adapter served on it (sums over models would count them twice)."""
        return super().stats() if self._owns_engine else {}

    async def aclose(self) -> None:
        self._ready = False
        for adapter in self.adapters:
            await adapter.aclose()
        if self._owns_engine:
            await self.engine.aclose()


class VLLMEncoderModel(EncoderModel):
    """An encoder-task model on vLLM's pooling runner."""

    encoder: VLLMEncoderBackend

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, platform=PLATFORM, **kwargs)

    @property
    def ready(self) -> bool:
        return self._ready and not self.encoder.engine.errored

    async def aclose(self) -> None:
        self._ready = False
        await self.batcher.close()
        await self.encoder.aclose()


async def load_vllm_model(
    config: ModelConfig, source: ResolvedSource, task: Task
) -> VLLMGenerativeModel | VLLMEncoderModel:
    """Start a vLLM engine for this model (off the event loop); ConfigError for bad settings.

    The engine's output handler runs on the calling event loop, which must be the loop that
    serves the model's requests.
    """
    engine_config = parse_vllm_section(config.vllm, config.model_name)
    if not vllm_installed():
        raise ConfigError(f"model {config.model_name}: backend: vllm, but {VLLM_INSTALL_HINT}")
    reason = unsupported_reason(task)
    if reason is not None:
        raise ConfigError(
            f"model {config.model_name}: task {task.value} is not available on the vllm "
            f"backend: {reason}; use backend: huggingface"
        )
    chat_template = _read_chat_template(config.generation.chat_template)
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
) -> VLLMGenerativeModel | VLLMEncoderModel:
    import transformers

    from hf_runtime.backends.vllm.engine import build_engine_args, create_engine

    runner = "generate" if task.is_generative else "pooling"
    engine_args = build_engine_args(config, source, engine_config, runner, cpu_build=cpu_build)
    engine = create_engine(config, engine_args)
    try:
        if task.is_generative:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source.tokenizer_path, trust_remote_code=config.trust_remote_code
            )
            model: VLLMGenerativeModel | VLLMEncoderModel = _generative(
                config, task, engine, tokenizer, engine_config, chat_template
            )
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source.tokenizer_path,
                do_lower_case=not config.disable_lower_case,  # as KServe (and our HF backend)
                trust_remote_code=config.trust_remote_code,
            )
            model = _encoder(config, source, task, engine, tokenizer, loop)
    except BaseException:
        engine.shutdown()
        raise
    logger.info(
        "model %s: %s on vLLM (%s runner), max_model_len %d, %s",
        config.model_name, task.value, runner, engine.model_config.max_model_len,
        engine_args.dtype,
    )  # fmt: skip
    return model


def _generative(
    config: ModelConfig,
    task: Task,
    engine: Any,
    tokenizer: Any,
    engine_config: VLLMEngineConfig,
    chat_template: str | None,
) -> VLLMGenerativeModel:
    from vllm.lora.request import LoRARequest

    from hf_runtime.backends.vllm.generator import VLLMGenerationEngine

    generation = VLLMGenerationEngine(
        engine,
        tokenizer,
        name=config.model_name,
        max_queue_size=config.generation.max_queue_size,
    )
    model = VLLMGenerativeModel(config, task, tokenizer, generation, chat_template=chat_template)
    for index, module in enumerate(engine_config.lora_modules, start=1):
        lora = LoRARequest(lora_name=module.name, lora_int_id=index, lora_path=module.path)
        adapter_config = config.model_copy(update={"model_name": module.name})
        model.adapters.append(
            VLLMGenerativeModel(
                adapter_config,
                task,
                tokenizer,
                generation.for_adapter(lora),
                chat_template=chat_template,
                owns_engine=False,
            )
        )
    return model


def _encoder(
    config: ModelConfig,
    source: ResolvedSource,
    task: Task,
    engine: Any,
    tokenizer: Any,
    loop: asyncio.AbstractEventLoop,
) -> VLLMEncoderModel:
    from hf_runtime.backends.vllm.pooling import VLLMEncoderBackend

    if config.tensor_input_names or config.return_token_type_ids:
        logger.warning(
            "model %s: tensor_input_names / return_token_type_ids have no effect on the vllm "
            "backend (vLLM builds the model inputs itself)",
            config.model_name,
        )
    max_length = int(engine.model_config.max_model_len)
    tokenizer_limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if config.max_model_len is None and 0 < tokenizer_limit < min(max_length, _NO_TOKENIZER_LIMIT):
        max_length = tokenizer_limit  # e.g. RoBERTa: 514 positions, 512 usable tokens
    backend = VLLMEncoderBackend(
        engine,
        tokenizer,
        loop,
        task=task,
        max_length=max_length,
        add_special_tokens=not config.disable_special_tokens,
    )
    processor = make_processor(task, backend, ProcessorOptions.from_config(config), source)
    return VLLMEncoderModel(config, task, backend, processor, padding_side=backend.padding_side)


def _read_chat_template(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"generation.chat_template: cannot read {path}: {exc}") from None
