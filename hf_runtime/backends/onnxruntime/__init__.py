"""The onnxruntime backend: encoder tasks on ONNX Runtime, opt-in (`backend: onnxruntime`).

Faster than torch eager on CPU for the same float32 weights (README, "ONNX Runtime"), but its
outputs differ from the huggingface backend's by up to 1e-4 (not KServe-bit-exact), so
`backend: auto` never picks it. Importing this package imports nothing heavy; `BACKEND.load`
imports onnxruntime, torch and transformers. Modules:
  config           the `onnxruntime:` configuration section
  export           the ONNX file: the checkpoint's own, or an export cached once per model
  session          session options, execution providers, dynamic int8
  encoder_backend  the `EncoderBackend`: the shared tokenizer side, the forward in ONNX Runtime
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging

from hf_runtime.backends import BackendParts, EncoderParts
from hf_runtime.backends.onnxruntime.config import check_model_options, parse_onnxruntime_section
from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

logger = logging.getLogger("hf_runtime")

INSTALL_HINT = (
    "onnxruntime is not installed: install it with `pip install hf-runtime[onnx]` "
    "(onnxruntime-gpu for the CUDA execution provider), or set backend: huggingface"
)


class OnnxRuntimeBackend:
    """The onnxruntime backend as the registry sees it (`hf_runtime.backends.registry`)."""

    name = "onnxruntime"
    label = "ONNX Runtime"
    install_hint = INSTALL_HINT

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec("onnxruntime") is not None
        except (ImportError, ValueError):
            return False

    def supported_architectures(self) -> frozenset[str] | None:
        return None  # whatever transformers loads and torch.onnx exports (checked at export)

    def unsupported_reason(self, task: Task) -> str | None:
        if task.is_generative:
            return "ONNX Runtime serves encoder tasks only"
        return None

    def auto_declines(self, task: Task) -> str | None:
        return (
            "auto: onnxruntime is opt-in (its outputs differ from torch's by up to 1e-4); "
            "set backend: onnxruntime to use it"
        )

    def validate_config(self, config: ModelConfig) -> None:
        if config.onnxruntime is not None:
            parse_onnxruntime_section(config.onnxruntime, config.model_name)
        if config.backend == self.name:
            check_model_options(config)

    def with_drain_timeout(self, config: ModelConfig, seconds: int) -> ModelConfig:
        return config  # the session runs in the worker's inference thread

    async def load(self, config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
        return await asyncio.to_thread(_load_encoder_parts, config, source, task)


def _load_encoder_parts(config: ModelConfig, source: ResolvedSource, task: Task) -> EncoderParts:
    from hf_runtime.backends.onnxruntime.encoder_backend import load_onnx_encoder

    encoder = load_onnx_encoder(
        config,
        source,
        task,
        return_offsets=task.spec.token_offsets and config.return_offsets_mapping,
    )
    logger.info(
        "model %s: %s on ONNX Runtime (%s, %s), max length %d, batching %s",
        config.model_name, task.value, encoder.onnx_file.origin,
        ", ".join(encoder.providers), encoder.max_length, config.batching.model_dump(),
    )  # fmt: skip
    return EncoderParts(BACKEND.name, encoder)


BACKEND = OnnxRuntimeBackend()
