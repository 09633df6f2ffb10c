"""Encoder models on ONNX Runtime: the onnxruntime backend's `EncoderBackend`.

Tokenizing, padding, pooling, sentence-transformers modules and picking logits are
`TransformersEncoder`'s, the huggingface backend's own code; only the forward pass runs in an
ONNX Runtime session (the checkpoint's ONNX file or a cached export, see `export`). Outputs
match the huggingface backend's within 1e-4 (float32 arithmetic in another order), so they are
not bit-exact with KServe's. Every method but `aclose` blocks; callers run them off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import torch
import transformers

from hf_runtime.backends import ForwardSpec
from hf_runtime.backends.onnxruntime.config import (
    OnnxRuntimeConfig,
    check_model_options,
    parse_onnxruntime_section,
)
from hf_runtime.backends.onnxruntime.export import OnnxFile, locate_onnx, output_name
from hf_runtime.backends.onnxruntime.fusion import fused_onnx
from hf_runtime.backends.onnxruntime.session import open_session, quantized_int8
from hf_runtime.backends.transformers_encoder import MODEL_CLASSES, TransformersEncoder
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

logger = logging.getLogger("hf_runtime")

INT8_DYNAMIC = "int8_dynamic"
# numpy types of the ONNX input element types an encoder's inputs use.
_INPUT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# What transformers' forward assumes for an input it is not given: every token attended,
# every token of the first segment.
_DEFAULT_INPUTS = {"attention_mask": torch.ones_like, "token_type_ids": torch.zeros_like}


class OnnxEncoderBackend(TransformersEncoder):
    """A transformers encoder checkpoint run by an ONNX Runtime session."""

    def _configure(self, config: ModelConfig, source: ResolvedSource) -> None:
        self.device = torch.device("cpu")  # post-processing; the session returns host arrays
        self.dtype = torch.float32
        self._section: OnnxRuntimeConfig = parse_onnxruntime_section(
            config.onnxruntime, config.model_name
        )

    def _load_model(
        self, config: ModelConfig, source: ResolvedSource, added_pad_token: bool
    ) -> None:
        self._config = transformers.AutoConfig.from_pretrained(
            str(source.model_path), trust_remote_code=config.trust_remote_code
        )
        self._vocab_size = len(self._tokenizer) if added_pad_token else int(self._config.vocab_size)
        onnx_file = locate_onnx(
            config, source, self.task, self._section, self._tokenizer, added_pad_token
        )
        if config.quantization == INT8_DYNAMIC:
            # The unfused file: its MatMuls by layer are what the int8 accuracy was measured on.
            onnx_file = quantized_int8(onnx_file, config.model_name)
        elif self._section.fusion == "auto":
            onnx_file = fused_onnx(onnx_file, self._config, self._tokenizer, config.model_name)
        self.onnx_file: OnnxFile = onnx_file
        self._session: Any = open_session(onnx_file.path, self._section)
        self._output = output_name(self.task.spec.head)
        self._inputs = {
            arg.name: _INPUT_TYPES.get(arg.type, np.int64) for arg in self._session.get_inputs()
        }
        unknown = sorted(set(self._inputs) - set(_DEFAULT_INPUTS) - {"input_ids"})
        if unknown:
            raise ConfigError(
                f"{onnx_file.origin} takes {', '.join(unknown)}, which the tokenizer does not "
                "produce; use another ONNX file (onnxruntime.model_file) or backend: huggingface"
            )

    def _accepted_inputs(self) -> tuple[frozenset[str] | None, str]:
        return frozenset(self._inputs), str(self.onnx_file.origin)

    # ------------------------------------------------------------------ properties

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, in order."""
        return list(self._session.get_providers()) if self._session is not None else []

    @property
    def hidden_size(self) -> int:
        for key in ("hidden_size", "d_model", "n_embd", "dim"):
            value = getattr(self._config, key, None)
            if isinstance(value, int):
                return value
        raise ConfigError("config.json names no hidden size")

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def num_labels(self) -> int:
        return int(getattr(self._config, "num_labels", 0) or 0)

    @property
    def num_hidden_layers(self) -> int | None:
        return getattr(self._config, "num_hidden_layers", None)

    # ------------------------------------------------------------------ forward

    def prepare(self, spec: ForwardSpec) -> None:
        if spec.layer_weighting is not None:
            raise ConfigError(
                f"WeightedLayerPooling ({spec.layer_weighting.folder}) needs every layer's "
                "hidden states, which the onnxruntime backend's export does not return; use "
                "backend: huggingface"
            )
        super().prepare(spec)

    def _run_model(self, feed: dict[str, torch.Tensor], spec: ForwardSpec) -> torch.Tensor:
        ids = feed["input_ids"]
        arrays = {
            # An input the configuration does not feed gets what torch's forward assumes.
            name: (feed[name] if name in feed else _DEFAULT_INPUTS[name](ids))
            .numpy()
            .astype(dtype, copy=False)
            for name, dtype in self._inputs.items()
        }
        (output,) = self._session.run([self._output], arrays)
        return torch.from_numpy(output)

    def close(self) -> None:
        self._session = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def load_onnx_encoder(
    config: ModelConfig, source: ResolvedSource, task: Task, *, return_offsets: bool = False
) -> OnnxEncoderBackend:
    """Blocking: tokenizer, ONNX file (exported once) and session. ConfigError for unusable
    settings."""
    if task.spec.head not in MODEL_CLASSES:
        raise ConfigError(f"task {task.value} is not an encoder task")
    check_model_options(config)
    return OnnxEncoderBackend(config, source, task, return_offsets=return_offsets)
