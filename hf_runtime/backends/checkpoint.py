"""What a checkpoint's config.json says about running it: dtype and longest sequence.

Shared by the encoder backends and the huggingface generation loader (KServe's rules, which
`derive_max_model_len` mirrors). Imports torch: import it only when a model loads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

from hf_runtime.errors import ConfigError

logger = logging.getLogger("hf_runtime")

ALLOW_LONG_MAX_MODEL_LEN_ENV = "ALLOW_LONG_MAX_MODEL_LEN"
# Config keys that bound the sequence length; the smallest present wins (vLLM/KServe rule).
MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
DEFAULT_MAX_MODEL_LEN = 2048  # KServe's fallback when the config bounds nothing
_ROPE_TYPES_WITHOUT_SCALING = ("su", "longrope", "llama3")

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
}


def resolve_dtype(name: str, hf_config: Mapping[str, Any], on_cuda: bool) -> torch.dtype:
    """KServe's rule: `auto` is the checkpoint's dtype if it names one, else float16 on CUDA
    and float32 on CPU."""
    if name != "auto":
        return _DTYPES[name]
    configured = hf_config.get("dtype") or hf_config.get("torch_dtype")
    if isinstance(configured, str) and configured in _DTYPES:
        return _DTYPES[configured]
    return torch.float16 if on_cuda else torch.float32


def derive_max_model_len(
    hf_config: Mapping[str, Any], user_value: int | None, env: Mapping[str, str] | None = None
) -> int:
    """The longest sequence the model takes, checked against the user's max_model_len.

    Mirrors KServe's `_get_and_verify_max_len`: smallest bounding config key, scaled by RoPE
    scaling; a user value above it is a ConfigError unless it fits the config's
    model_max_length or ALLOW_LONG_MAX_MODEL_LEN=1.
    """
    env = os.environ if env is None else env
    bounds = [
        value
        for key in MAX_LEN_KEYS
        if isinstance(value := hf_config.get(key), int) and not isinstance(value, bool)
    ]
    if not bounds:
        if user_value is not None:
            return user_value
        logger.warning(
            "the model config bounds no sequence length; using max_model_len %d",
            DEFAULT_MAX_MODEL_LEN,
        )
        return DEFAULT_MAX_MODEL_LEN
    derived: float = min(bounds)
    rope = hf_config.get("rope_scaling")
    if isinstance(rope, dict) and "factor" in rope:
        rope_type = rope.get("rope_type", rope.get("type"))
        if rope_type not in _ROPE_TYPES_WITHOUT_SCALING:
            if rope_type == "yarn":
                derived = rope.get("original_max_position_embeddings", derived)
            derived *= float(rope["factor"])
    derived_len = int(derived)
    if user_value is None or user_value <= derived_len:
        return derived_len if user_value is None else user_value
    model_max_length = hf_config.get("model_max_length")
    if isinstance(model_max_length, int) and user_value <= model_max_length:
        return user_value
    if env.get(ALLOW_LONG_MAX_MODEL_LEN_ENV, "").lower() in ("1", "true"):
        logger.warning(
            "max_model_len %d is greater than the derived %d; allowed by %s",
            user_value, derived_len, ALLOW_LONG_MAX_MODEL_LEN_ENV,
        )  # fmt: skip
        return user_value
    raise ConfigError(
        f"max_model_len: {user_value} is greater than the model's derived maximum length "
        f"{derived_len} (from {', '.join(k for k in MAX_LEN_KEYS if k in hf_config)}). "
        f"Longer inputs may give wrong outputs or errors; to allow it anyway set "
        f"{ALLOW_LONG_MAX_MODEL_LEN_ENV}=1"
    )
