"""Loading a model on the huggingface backend: the parts the runtime serves it with.

Encoder tasks get an `HFEncoderBackend`; generative tasks a tokenizer, the model on an
`HFGenerationEngine`, and the configured chat template. Loading runs in a worker thread;
torch and transformers are imported there, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_runtime.backends import BackendParts, EncoderParts, GenerationParts
from hf_runtime.backends.generation_defaults import checked_sampling_defaults, diff_sampling_param
from hf_runtime.backends.huggingface import BACKEND
from hf_runtime.backends.tokenizer_rules import read_chat_template
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Head, Task

if TYPE_CHECKING:
    from hf_runtime.backends.huggingface.prefix_cache import PrefixCacheSettings

logger = logging.getLogger("hf_runtime")

PLATFORM = BACKEND.name


async def load_huggingface(config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
    """Load tokenizer and model off the event loop; ConfigError for unusable settings."""
    if task.is_generative:
        return await asyncio.to_thread(load_generation_parts, config, source, task)
    return await asyncio.to_thread(load_encoder_parts, config, source, task)


def load_encoder_parts(config: ModelConfig, source: ResolvedSource, task: Task) -> EncoderParts:
    """Blocking: tokenizer + model for an encoder task."""
    if not task.is_encoder:
        raise ConfigError(f"task {task.value} is generative, not an encoder task")
    from hf_runtime.backends.huggingface.encoder_backend import load_hf_encoder

    encoder = load_hf_encoder(
        config,
        source,
        task,
        return_offsets=task.spec.token_offsets and config.return_offsets_mapping,
    )
    apply_encoder_precision(config, encoder)
    logger.info(
        "model %s: %s on %s (%s%s), max length %d, batching %s",
        config.model_name, task.value, encoder.device, encoder.dtype,
        f", {config.quantization}" if config.quantization else "", encoder.max_length,
        config.batching.model_dump(),
    )  # fmt: skip
    return EncoderParts(PLATFORM, encoder)


def apply_encoder_precision(config: ModelConfig, encoder: Any) -> None:
    """The opt-in precision settings, applied to a loaded encoder in place: a warning for a
    half precision this CPU only emulates, and `quantization` (then one forward pass, so a
    kernel this machine lacks fails the load, not the first request)."""
    import torch

    from hf_runtime.backends.huggingface.precision import (
        INT8_DYNAMIC,
        check_half_precision,
        quantize_int8_dynamic,
    )

    check_half_precision(encoder.dtype, encoder.device)
    if config.quantization != INT8_DYNAMIC:
        return
    model = encoder.model
    quantize_int8_dynamic(model, encoder.device, encoder.dtype)
    ids = torch.tensor([[encoder.tokenizer.pad_token_id or 0] * 2], device=encoder.device)
    try:
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    except RuntimeError as exc:
        raise ConfigError(
            f"quantization: {INT8_DYNAMIC}: the quantized model fails on this machine: {exc}"
        ) from exc


def load_generation_parts(
    config: ModelConfig, source: ResolvedSource, task: Task
) -> GenerationParts:
    """Blocking: tokenizer + model for a generative task, its engine started."""
    import torch
    import transformers

    from hf_runtime.backends.checkpoint import derive_max_model_len, resolve_dtype
    from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
    from hf_runtime.backends.huggingface.precision import check_half_precision

    if not task.is_generative:
        raise ConfigError(f"task {task.value} is not a generative task")
    if config.quantization is not None:
        raise ConfigError(
            f"model {config.model_name}: quantization: {config.quantization} applies to "
            f"encoder tasks only, not {task.value}; remove it (or use dtype: bfloat16)"
        )
    chat_template = read_chat_template(config.generation.chat_template)
    is_seq2seq = task.spec.head is Head.seq2seq_lm
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        source.tokenizer_path, trust_remote_code=config.trust_remote_code
    )
    if not is_seq2seq:
        tokenizer.padding_side = "left"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # padding only; embeddings stay as trained

    on_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if on_cuda else "cpu")
    dtype = resolve_dtype(config.dtype, source.hf_config, on_cuda)
    check_half_precision(dtype, device)
    model_class = (
        transformers.AutoModelForSeq2SeqLM if is_seq2seq else transformers.AutoModelForCausalLM
    )
    model = model_class.from_pretrained(
        source.model_path, dtype=dtype, trust_remote_code=config.trust_remote_code
    )
    model = model.to(device).eval()

    hf_config = source.hf_config or model.config.to_dict()
    max_model_len = derive_max_model_len(hf_config, config.max_model_len)
    engine = HFGenerationEngine(
        model,
        tokenizer,
        max_model_len=max_model_len,
        max_num_seqs=config.generation.max_num_seqs,
        max_queue_size=config.generation.max_queue_size,
        eos_token_ids=_eos_token_ids(model, tokenizer),
        name=config.model_name,
        prefix_cache=_prefix_cache_settings(config),
    )
    cache = engine.prefix_cache
    logger.info(
        "model %s: %s on %s (%s), max_model_len %d, %s, prefix cache %s",
        config.model_name, type(model).__name__, device, dtype, max_model_len, engine.batch_kind,
        f"{cache.max_bytes} bytes in blocks of {cache.block_size}" if cache else "off",
    )  # fmt: skip
    sampling_defaults = checked_sampling_defaults(
        config, lambda: diff_sampling_param(_generation_config_diff(source.model_path, model))
    )
    return GenerationParts(
        PLATFORM,
        engine,
        tokenizer,
        chat_template=chat_template,
        sampling_defaults=sampling_defaults,
    )


def _prefix_cache_settings(config: ModelConfig) -> PrefixCacheSettings | None:
    from hf_runtime.backends.huggingface.prefix_cache import PrefixCacheSettings

    section = config.generation.prefix_cache
    if not section.enabled:
        return None
    return PrefixCacheSettings(max_bytes=int(section.max_bytes), block_size=section.block_size)


def _generation_config_diff(model_path: Path, model: Any) -> dict[str, Any]:
    """The checkpoint's generation_config.json, its non-default values, as vLLM reads it
    (`try_get_generation_config`); without the file, the one transformers derived from
    config.json (vLLM's fallback). The file is looked for first: from_pretrained of a folder
    without one would go looking on the Hub."""
    import transformers

    generation_config = getattr(model, "generation_config", None)
    if (Path(model_path) / "generation_config.json").is_file():
        try:
            generation_config = transformers.GenerationConfig.from_pretrained(str(model_path))
        except (OSError, ValueError) as exc:
            logger.warning("cannot read %s/generation_config.json: %s", model_path, exc)
            return {}
    return dict(generation_config.to_diff_dict()) if generation_config is not None else {}


def _eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokenizer's EOS and the generation config's (vLLM stops on both)."""
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids
