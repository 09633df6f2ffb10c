"""The `vllm:` section of a model's configuration, validated without importing vLLM.

Every key is optional; `None` means "vLLM's own default" unless the field says otherwise.
Keys that name an engine argument the installed vLLM lacks are rejected when the engine is
built (see `async_llm.build_engine_args`), so a typo or a removed option never passes silently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)


class LoRAModule(_Strict):
    """A LoRA adapter served under its own model name on top of the base model."""

    name: str = Field(min_length=1, description="The model name requests use to pick it.")
    path: str = Field(min_length=1, description="Local folder with adapter_config.json.")
    base_model_name: str | None = Field(None, description="Informational: the base model.")


class VLLMEngineConfig(_Strict):
    """vLLM engine settings for one model (the `vllm:` sub-section of a ModelConfig)."""

    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per model. Default 1: never silently every visible GPU."
    )
    pipeline_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_num_seqs: int | None = Field(
        None, ge=1, description="Most sequences decoded together; default generation.max_num_seqs."
    )
    max_num_batched_tokens: int | None = Field(None, ge=1)
    max_model_len: int | None = Field(
        None, ge=1, description="Same as the model's max_model_len; give one or make them equal."
    )
    enforce_eager: bool | None = Field(
        None, description="None: eager on the CPU build (compiling costs a minute, gains nothing)."
    )
    enable_prefix_caching: bool | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    kv_cache_space: int | None = Field(
        None, ge=1, description="KV cache size in GiB (CPU build: VLLM_CPU_KVCACHE_SPACE)."
    )
    swap_space: float | None = Field(None, ge=0, description="CPU swap in GiB (older vLLM only).")
    cpu_offload_gb: float | None = Field(None, ge=0)
    block_size: int | None = Field(None, ge=1)
    seed: int | None = Field(None, description="Engine seed; requests still take their own.")
    max_logprobs: int | None = Field(None, ge=0)
    enable_lora: bool | None = None
    lora_modules: list[LoRAModule] = Field(default_factory=list)
    max_lora_rank: int | None = Field(None, ge=1)
    shutdown_timeout: int | None = Field(
        None,
        ge=0,
        description="Seconds vLLM's engine core lets in-flight requests finish after SIGTERM; "
        "default: the server's drain_timeout (BentoML signals the engine core too).",
    )
    max_loras: int | None = Field(None, ge=1)
    disable_log_stats: bool = Field(False, description="True drops the vllm:* Prometheus metrics.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other AsyncEngineArgs field, passed as is (checked against vLLM).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> VLLMEngineConfig:
        if self.lora_modules and self.enable_lora is False:
            raise ValueError("lora_modules is set but enable_lora is false")
        names = [module.name for module in self.lora_modules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"lora_modules names must be unique; repeated: {repeated}")
        overlap = sorted(set(self.engine_args) & set(type(self).model_fields))
        if overlap:
            raise ValueError(f"engine_args repeats key(s) of the vllm section itself: {overlap}")
        return self

    @property
    def lora_enabled(self) -> bool:
        return bool(self.enable_lora) or bool(self.lora_modules)


ALLOWED_KEYS: tuple[str, ...] = tuple(VLLMEngineConfig.model_fields)


def reject_huggingface_only_options(config: ModelConfig) -> None:
    """ConfigError for model-level settings only the huggingface backend implements.

    `quantization: int8_dynamic` is PyTorch's dynamic int8 (int8 weights and activations
    computed per batch) for an unquantized checkpoint; vLLM has no such method for dense
    layers (its online int8 shorthand is weight-only and MoE-only), so ignoring the setting
    would serve float numbers the configuration did not ask for.
    """
    if config.quantization is not None:
        raise ConfigError(
            f"model {config.model_name}: quantization: {config.quantization} is not available "
            "on the vllm backend (vLLM has no dynamic int8 for unquantized checkpoints); use "
            "backend: huggingface, or vLLM's own methods via vllm.quantization (e.g. a "
            "pre-quantized AWQ/GPTQ/compressed-tensors checkpoint)"
        )


def parse_vllm_section(
    section: dict[str, Any] | None, model_name: str = "model"
) -> VLLMEngineConfig:
    """Validate a model's `vllm:` mapping; ConfigError names each bad key and the allowed ones."""
    if section is None:
        return VLLMEngineConfig()
    if not isinstance(section, dict):
        raise ConfigError(
            f"model {model_name}: vllm must be a mapping, got {type(section).__name__}"
        )
    try:
        return VLLMEngineConfig.model_validate(section)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            where = f"vllm.{loc}" if loc else "vllm"
            if err["type"] == "extra_forbidden":
                nested = len(err["loc"]) > 1 and err["loc"][0] == "lora_modules"
                allowed = tuple(LoRAModule.model_fields) if nested else ALLOWED_KEYS
                message = f"unknown key; allowed: {', '.join(allowed)}"
            else:
                message = err["msg"]
            lines.append(f"  {where}: {message}")
        raise ConfigError(
            f"model {model_name}: invalid vllm configuration:\n" + "\n".join(lines)
        ) from None
