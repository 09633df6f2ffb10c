"""Loading a model on the huggingface backend: the parts the runtime serves it with.

Encoder tasks get an `HFEncoderBackend`; generative tasks a tokenizer, the model on an
`HFGenerationEngine`, and the configured chat template. Loading runs in a worker thread;
torch and transformers are imported there, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hf_runtime.backends import BackendParts, EncoderParts, GenerationParts
from hf_runtime.backends.huggingface import BACKEND
from hf_runtime.backends.tokenizer_rules import read_chat_template
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.names import Task

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
        return_offsets=task is Task.token_classification and config.return_offsets_mapping,
    )
    logger.info(
        "model %s: %s on %s (%s), max length %d, batching %s",
        config.model_name, task.value, encoder.device, encoder.dtype, encoder.max_length,
        config.batching.model_dump(),
    )  # fmt: skip
    return EncoderParts(PLATFORM, encoder)


def load_generation_parts(
    config: ModelConfig, source: ResolvedSource, task: Task
) -> GenerationParts:
    """Blocking: tokenizer + model for a generative task, its engine started."""
    import torch
    import transformers

    from hf_runtime.backends.huggingface.checkpoint import derive_max_model_len, resolve_dtype
    from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine

    if task not in (Task.text_generation, Task.text2text_generation):
        raise ConfigError(f"task {task.value} is not a generative task")
    chat_template = read_chat_template(config.generation.chat_template)
    is_seq2seq = task is Task.text2text_generation
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
    )
    logger.info(
        "model %s: %s on %s (%s), max_model_len %d, %s",
        config.model_name, type(model).__name__, device, dtype, max_model_len, engine.batch_kind,
    )  # fmt: skip
    return GenerationParts(PLATFORM, engine, tokenizer, chat_template=chat_template)


def _eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokenizer's EOS and the generation config's (vLLM stops on both)."""
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids
