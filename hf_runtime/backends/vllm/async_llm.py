"""Creating vLLM's AsyncLLM engine for one model, from our configuration.

Imports vLLM at module level: import this module only after `env.apply_env_defaults`, when a
vLLM model loads. `AsyncLLM` runs its scheduler and model in one engine-core child process
(spawned); this process keeps the tokenizer, detokenizer and output handler, which runs as a
task on the event loop that first sends a request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Sequence
from typing import Any, Literal

from vllm import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.v1.engine.async_llm import AsyncLLM

from hf_runtime.backends.vllm.config import VLLMEngineConfig
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource

logger = logging.getLogger("hf_runtime")

GIB = 1 << 30
Runner = Literal["generate", "pooling"]
ENGINE_ARG_NAMES: frozenset[str] = frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))
# Fields of our vllm section that are not engine arguments (or are renamed below).
_NOT_ENGINE_ARGS = {"lora_modules", "kv_cache_space", "engine_args"}


def resolve_max_model_len(config: ModelConfig, engine_config: VLLMEngineConfig) -> int | None:
    """The one max_model_len: the model's, the vllm section's, or both when they agree."""
    top, section = config.max_model_len, engine_config.max_model_len
    if top is not None and section is not None and top != section:
        raise ConfigError(
            f"model {config.model_name}: max_model_len ({top}) and vllm.max_model_len "
            f"({section}) differ; set one of them"
        )
    return top if top is not None else section


_CHECKPOINT_DTYPES = ("float32", "float16", "bfloat16")


def engine_dtype(dtype: str, hf_config: dict[str, Any]) -> str:
    """The huggingface backend's `auto` rule, made explicit for vLLM.

    vLLM's own `auto` downcasts float32 checkpoints to bfloat16 on CPU, which flips close greedy
    choices (SmolLM2's answer to a simple question changes); both backends must agree.
    """
    if dtype != "auto":
        return dtype
    configured = hf_config.get("dtype") or hf_config.get("torch_dtype")
    return configured if configured in _CHECKPOINT_DTYPES else "auto"


def build_engine_args(
    config: ModelConfig,
    source: ResolvedSource,
    engine_config: VLLMEngineConfig,
    runner: Runner,
    *,
    cpu_build: bool,
) -> AsyncEngineArgs:
    """AsyncEngineArgs for this model; ConfigError for options the installed vLLM lacks."""
    kwargs: dict[str, Any] = {
        "model": str(source.model_path),
        "tokenizer": str(source.tokenizer_path),
        "served_model_name": config.model_name,
        "dtype": engine_dtype(config.dtype, source.hf_config),
        "trust_remote_code": config.trust_remote_code,
        "runner": runner,
    }
    max_model_len = resolve_max_model_len(config, engine_config)
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    section = engine_config.model_dump(exclude=_NOT_ENGINE_ARGS | {"max_model_len"})
    kwargs.update({key: value for key, value in section.items() if value is not None})
    if engine_config.max_num_seqs is None and runner == "generate":
        kwargs["max_num_seqs"] = config.generation.max_num_seqs
    if engine_config.enforce_eager is None and cpu_build:
        kwargs["enforce_eager"] = True  # torch.compile: +60 s startup on CPU, no faster decoding
    if engine_config.kv_cache_space is not None:
        kwargs["kv_cache_memory_bytes"] = engine_config.kv_cache_space * GIB
    if engine_config.lora_enabled:
        kwargs["enable_lora"] = True
    if engine_config.enable_prefix_caching is None and runner == "generate":
        # generation.prefix_cache.enabled, the setting both backends read (on by default,
        # as vLLM's own default for generation).
        kwargs["enable_prefix_caching"] = config.generation.prefix_cache.enabled
    kwargs.update(engine_config.engine_args)

    unknown = sorted(set(kwargs) - ENGINE_ARG_NAMES)
    if unknown:
        import vllm

        raise ConfigError(
            f"model {config.model_name}: the installed vLLM {vllm.__version__} has no engine "
            f"argument(s) {unknown}; remove them from the vllm section"
        )
    try:
        return AsyncEngineArgs(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model {config.model_name}: invalid vLLM engine argument: {exc}"
        ) from None


def create_engine(config: ModelConfig, engine_args: AsyncEngineArgs) -> AsyncLLM:
    """Start the engine (blocking: loads weights, spawns the engine core; run it in a thread).

    vLLM reports bad configurations (a max_model_len beyond the model's, an unknown dtype or
    quantization, a task the architecture cannot do) as ValueError: those become ConfigError.
    """
    try:
        return AsyncLLM.from_engine_args(engine_args)
    except ValueError as exc:
        raise ConfigError(
            f"model {config.model_name}: vLLM rejected the configuration: {exc}"
        ) from exc


async def shutdown_engine(engine: AsyncLLM) -> None:
    """Stop the engine: first its output handler (on this loop), then the engine core.

    In the other order the handler sees the engine core vanish and logs an EngineDeadError.
    """
    handler = getattr(engine, "output_handler", None)
    if handler is not None and not handler.done():
        handler.cancel()
        await asyncio.gather(handler, return_exceptions=True)
    await asyncio.to_thread(engine.shutdown)


async def render_token_prompt(engine: AsyncLLM, token_ids: Sequence[int]) -> Any:
    """Prompt token ids as an engine input, through vLLM's renderer (raw prompts passed to
    `generate`/`encode` are deprecated). Raises vLLM's VLLMValidationError for bad prompts."""
    prompt = TokensPrompt(prompt_token_ids=list(token_ids))
    (rendered,) = await engine.renderer.render_cmpl_async([prompt])
    return rendered


def engine_failure(engine: AsyncLLM) -> str | None:
    """Why the engine died, naming the engine core process and how it ended (a signal such as
    the OOM killer's SIGKILL, or an exit code); None while it runs."""
    if not engine.errored:
        return None
    resources = getattr(engine.engine_core, "resources", None)
    manager = getattr(resources, "engine_manager", None)
    finished = getattr(manager, "finished_procs", dict)()
    if finished:
        ends = ", ".join(f"{name} {_how_it_ended(code)}" for name, code in finished.items())
        return f"Its vLLM engine core process died: {ends}"
    try:
        cause = engine.dead_error
    except Exception as exc:  # vLLM versions differ in what they keep; say what we can
        cause = exc
    return f"Its vLLM engine died: {cause}"


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-exitcode} ({name})"
    return f"exited with code {exitcode}"
