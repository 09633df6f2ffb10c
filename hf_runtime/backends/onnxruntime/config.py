"""The `onnxruntime:` section of a model's configuration, validated without importing ONNX
Runtime. Every key is optional; the defaults are the measured ones (README, "ONNX Runtime")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError

GraphOptimization = Literal["disable", "basic", "extended", "all"]
Fusion = Literal["auto", "off"]


class OnnxRuntimeConfig(BaseModel):
    """ONNX Runtime settings for one model (the `onnxruntime:` sub-section of a ModelConfig)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)

    model_file: str | None = Field(
        None,
        min_length=1,
        description="An ONNX file inside the model folder to run (e.g. onnx/model_O3.onnx); "
        "unset: onnx/model.onnx or model.onnx when the checkpoint ships one, else an export.",
    )
    graph_optimization_level: GraphOptimization = Field(
        "all", description="ONNX Runtime's graph optimisations (all: fused attention, GELU...)."
    )
    fusion: Fusion = Field(
        "auto",
        description="auto: fuse the file offline with ONNX Runtime's transformers optimizer "
        "(BERT-like architectures; fused attention, embeddings and skip LayerNorms), kept only "
        "when it matches the unfused file; off: run the file as exported or shipped.",
    )
    intra_op_threads: int | None = Field(
        None, ge=1, description="Threads per forward pass; default: the torch rule (cores)."
    )
    allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's intra-op threads busy-wait for the next task (its own "
        "default). Off here: spinning threads take the cores from the server's event loop and "
        "tokenizer (paired over HTTP: 2.9x the requests at c=1 and 1.7x at c=64 with it off).",
    )


def parse_onnxruntime_section(
    section: dict[str, Any] | None, model_name: str = "model"
) -> OnnxRuntimeConfig:
    """Validate a model's `onnxruntime:` mapping; ConfigError names each bad key."""
    if section is None:
        return OnnxRuntimeConfig()
    if not isinstance(section, dict):
        raise ConfigError(
            f"model {model_name}: onnxruntime must be a mapping, got {type(section).__name__}"
        )
    try:
        return OnnxRuntimeConfig.model_validate(section)
    except ValidationError as exc:
        allowed = ", ".join(OnnxRuntimeConfig.model_fields)
        problems = "; ".join(
            f"onnxruntime.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"model {model_name}: {problems} (keys: {allowed})") from None


def check_model_options(config: ModelConfig) -> None:
    """ConfigError for model-level settings this backend cannot honour: a half precision
    (the export runs float32; int8 is `quantization: int8_dynamic`)."""
    if config.dtype in ("float16", "half", "bfloat16"):
        raise ConfigError(
            f"model {config.model_name}: dtype: {config.dtype} is not available on the "
            "onnxruntime backend, which runs the float32 export (quantization: int8_dynamic "
            "for int8); use dtype: auto or float32, or backend: huggingface"
        )
