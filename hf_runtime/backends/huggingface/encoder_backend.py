"""Encoder models on transformers + torch: AutoModelFor<task> and a blocking batched forward.

`HFEncoderBackend` is the huggingface backend's `hf_runtime.backends.EncoderBackend`: the
model half; tokenizing, padding and post-processing are `TransformersEncoder`'s, shared with
the onnxruntime backend. Imports torch and transformers at module level: this module is only
imported when an encoder model loads. Every method but `aclose` blocks; callers run them off
the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import torch
import transformers

from hf_runtime.backends import ForwardSpec
from hf_runtime.backends.checkpoint import resolve_dtype
from hf_runtime.backends.transformers_encoder import MODEL_CLASSES, TransformersEncoder
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

logger = logging.getLogger("hf_runtime")

__all__ = ["MODEL_CLASSES", "HFEncoderBackend", "load_hf_encoder"]


class HFEncoderBackend(TransformersEncoder):
    """A transformers encoder (sequence/token classification, masked LM or bare encoder)."""

    def _configure(self, config: ModelConfig, source: ResolvedSource) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(config.dtype, source.hf_config, self.device.type == "cuda")

    def _load_model(
        self, config: ModelConfig, source: ResolvedSource, added_pad_token: bool
    ) -> None:
        model_cls = getattr(transformers, MODEL_CLASSES[self.task.spec.head])
        kwargs: dict[str, Any] = {
            "dtype": self.dtype,
            "trust_remote_code": config.trust_remote_code,
        }
        try:
            model = model_cls.from_pretrained(
                str(source.model_path), attn_implementation="sdpa", **kwargs
            )
        except (ValueError, ImportError) as exc:
            if "sdpa" not in str(exc).lower():
                raise
            logger.info("model has no SDPA attention; using its default (%s)", exc)
            model = model_cls.from_pretrained(str(source.model_path), **kwargs)
        self._model = model.to(self.device).eval()
        if added_pad_token:
            self._model.resize_token_embeddings(len(self._tokenizer))
        if getattr(self._model.config, "pad_token_id", None) is None:
            self._model.config.pad_token_id = self._tokenizer.pad_token_id

    def _accepted_inputs(self) -> tuple[frozenset[str] | None, str]:
        parameters = inspect.signature(self._model.forward).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        return (None if takes_any else frozenset(parameters)), type(self._model).__name__

    # ------------------------------------------------------------------ properties

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def hidden_size(self) -> int:
        config = self._model.config
        for key in ("hidden_size", "d_model", "n_embd", "dim"):
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
        return int(self._model.get_input_embeddings().embedding_dim)

    @property
    def vocab_size(self) -> int:
        return int(self._model.get_input_embeddings().num_embeddings)

    @property
    def num_labels(self) -> int:
        return int(getattr(self._model.config, "num_labels", 0) or 0)

    @property
    def num_hidden_layers(self) -> int | None:
        return getattr(self._model.config, "num_hidden_layers", None)

    @property
    def model(self) -> Any:
        """The underlying transformers model (for tests and diagnostics)."""
        return self._model

    # ------------------------------------------------------------------ forward

    def _run_model(self, feed: dict[str, torch.Tensor], spec: ForwardSpec) -> torch.Tensor:
        weighting = spec.layer_weighting
        if weighting is not None:
            output = self._model(**feed, return_dict=True, output_hidden_states=True)
            return self._layer_weighted(output.hidden_states, weighting)
        output = self._model(**feed, return_dict=True)
        return output.last_hidden_state if spec.pooling else output.logits

    def close(self) -> None:
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def load_hf_encoder(
    config: ModelConfig, source: ResolvedSource, task: Task, *, return_offsets: bool = False
) -> HFEncoderBackend:
    """Blocking: load tokenizer and model. Raises ConfigError for unusable settings."""
    if task.spec.head not in MODEL_CLASSES:
        raise ConfigError(f"task {task.value} is not an encoder task")
    return HFEncoderBackend(config, source, task, return_offsets=return_offsets)
