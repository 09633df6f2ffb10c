"""The per-model sections: one pydantic model per served model, the only home of its defaults.
Field names are KServe huggingfaceserver's flags (and vLLM's, for generation)."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hf_runtime.config.base import StrictSection
from hf_runtime.config.server import ServerConfig
from hf_runtime.tasks.registry import Task

DEFAULT_MAX_LOG_LEN = 256
Dtype = Literal["auto", "float16", "float32", "bfloat16", "float", "half"]
BackendName = Literal["auto", "huggingface", "vllm", "onnxruntime"]
# The tool-call parsers of hf_runtime.protocols.openai.tool_parsers (vLLM's names).
ToolCallParser = Literal["hermes", "llama3_json", "mistral", "pythonic"]
# The reasoning parsers of hf_runtime.reasoning (vLLM's names).
ReasoningParser = Literal["deepseek_r1", "qwen3"]
# vLLM's flat flags (and this runtime's default_max_tokens) -> the generation section's key
# each sets: `--override-generation-config JSON` is generation.sampling_defaults.
GENERATION_FLAT_FLAGS: dict[str, str] = {
    "generation_config": "generation_config",
    "tool_call_parser": "tool_call_parser",
    "reasoning_parser": "reasoning_parser",
    "override_generation_config": "sampling_defaults",
    "default_max_tokens": "default_max_tokens",
}


class BatchingConfig(StrictSection):
    """Cross-request batching of encoder forward passes (one batcher per model)."""

    max_batch_size: int = Field(64, ge=1, description="Most texts in one forward pass.")
    max_batch_tokens: int = Field(
        16384, ge=1, description="Most padded tokens in one forward pass."
    )
    max_queue_size: int = Field(
        2048, ge=1, description="Most texts waiting; beyond it requests get 429 (back-pressure)."
    )


class SamplingDefaults(StrictSection):
    """generation.sampling_defaults (vLLM's --override-generation-config): the values a request
    field left unset takes, over the checkpoint's generation_config.json. The ranges are the
    ones requests are held to: a default out of range would fail every request that leaves the
    field unset, so it is a configuration error instead. Unset (None): no override."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), validate_default=True, allow_inf_nan=False
    )

    temperature: float | None = Field(None, ge=0, description="0 is greedy.")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1, description="0 or -1: off.")
    min_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(
        None,
        ge=1,
        # vLLM's override uses generation_config.json's name for it.
        validation_alias=AliasChoices("max_tokens", "max_new_tokens"),
        description="The default length (generation_config.json's max_new_tokens, which is "
        "accepted as its name too), capped by the room the prompt leaves.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_length_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_tokens" in data and "max_new_tokens" in data:
            raise ValueError("max_new_tokens is an alias of max_tokens; give one")
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML `true` would pass as 1
            raise ValueError(f"must be a number, not {value!r}")
        return value

    def values(self) -> dict[str, float | int]:
        """The fields set, as SamplingParams names (top_k -1 written as 0: both mean off)."""
        found = self.model_dump(exclude_none=True)
        if "top_k" in found:
            found["top_k"] = max(found["top_k"], 0)
        return found


class PrefixCacheConfig(StrictSection):
    """generation.prefix_cache: reuse the key/value cache of a prompt prefix seen before."""

    enabled: bool = Field(
        True,
        description="Cache prompt prefixes. huggingface backend: decoder-only models on the "
        "padded batch; vllm backend: vLLM's enable_prefix_caching, unless vllm.enable_prefix_"
        "caching says otherwise.",
    )
    max_bytes: ByteSize = Field(
        ByteSize(128 << 20),
        gt=0,
        description="huggingface backend: most bytes of cached keys and values per model "
        '(e.g. 268435456 or "256MiB"); least recently used blocks go first. vLLM keeps its '
        "cache in its own KV space (vllm.kv_cache_space).",
    )
    block_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="huggingface backend: tokens per cached block; prefixes match in whole "
        "blocks (vLLM: vllm.block_size).",
    )


class GenerationConfig(StrictSection):
    """Generative (text_generation / text2text_generation) settings."""

    max_num_seqs: int = Field(16, ge=1, description="Most sequences decoded together.")
    max_queue_size: int = Field(
        256,
        ge=1,
        description="Sequences that may wait beside max_num_seqs running; past that, 429 (the "
        "same rule on every backend).",
    )
    chat_template: str | None = Field(None, description="Path to a Jinja chat template file.")
    allow_request_chat_template: bool = Field(
        False, description="Let requests pass their own `chat_template` (off: templates run code)."
    )
    tool_call_parser: ToolCallParser | None = Field(
        None,
        description='How the model writes tool calls, for OpenAI `tool_choice: "auto"` '
        "(vLLM's --tool-call-parser): hermes (Hermes, Qwen2.5/3, the default SmolLM2 template), "
        'llama3_json, mistral, pythonic. Unset: "auto" is refused and tools only reach the '
        "chat template.",
    )
    reasoning_parser: ReasoningParser | None = Field(
        None,
        description="How a reasoning model marks its thinking (vLLM's --reasoning-parser): "
        "deepseek_r1 (text up to </think>; DeepSeek-R1, QwQ) or qwen3 (the same, and "
        "<tool_call> ends it; chat_template_kwargs enable_thinking: false turns it off per "
        "request). The thinking is returned apart: chat `reasoning` / `reasoning_content`, a "
        "Responses `reasoning` item, Messages `thinking` blocks. Unset: the text is returned "
        "as it is.",
    )
    generation_config: Literal["auto", "none", "vllm"] = Field(
        "auto",
        description="vLLM's --generation-config: `auto` takes the sampling defaults of the "
        "model's generation_config.json (temperature, top_p, top_k, min_p, repetition, presence "
        "and frequency penalties; max_new_tokens as max_tokens) for the fields a request leaves "
        "unset; `none` (or vLLM's `vllm`) ignores them: OpenAI's defaults apply.",
    )

    prefix_cache: PrefixCacheConfig = Field(default_factory=PrefixCacheConfig)
    sampling_defaults: SamplingDefaults = Field(
        default_factory=SamplingDefaults,
        description="vLLM's --override-generation-config: temperature, top_p, top_k, min_p, "
        "presence/frequency/repetition penalties, max_tokens (or max_new_tokens) for the "
        "fields a request leaves unset, over the model's generation_config.json values (and "
        "applied with generation_config: none too, as vLLM does).",
    )
    default_max_tokens: int | None = Field(
        None,
        ge=1,
        description="max_tokens for a request that gives none when neither "
        "sampling_defaults.max_tokens nor the model's generation_config.json max_new_tokens "
        "sets one; unset: the rest of the context (OpenAI's and vLLM's default). Always capped "
        "by the room the prompt leaves.",
    )

    @field_validator("sampling_defaults", mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        return _sampling_mapping(value)

    @property
    def uses_model_sampling_defaults(self) -> bool:
        return self.generation_config == "auto"


class ModelConfig(StrictSection):
    """One served model. Field names are KServe huggingfaceserver's flags."""

    model_name: str = "model"
    model_id: str | None = None
    model_dir: str | None = None
    gguf_file: str | None = None
    model_revision: str | None = None
    tokenizer_revision: str | None = None
    dtype: Dtype = "auto"
    # Opt-in, encoder tasks on the huggingface (CPU) or onnxruntime backend: int8_dynamic runs
    # the encoder's Linear layers (MatMuls) in int8. Faster but lossy (README's precision
    # tables); never implied by auto.
    quantization: Literal["int8_dynamic"] | None = None
    task: Task | None = None
    backend: BackendName = "auto"
    max_model_len: int | None = Field(None, ge=1)
    disable_lower_case: bool = False
    disable_special_tokens: bool = False
    trust_remote_code: bool = False
    tensor_input_names: list[str] | None = None
    return_token_type_ids: bool = False
    return_probabilities: bool = False
    return_raw_logits: bool = Field(False, validation_alias="return_raw_logits")
    return_offsets_mapping: bool = False
    # Opt-in encoder outputs (off: KServe-exact). return_labels: sequence classification
    # answers id2label names with scores; top_k: the k best labels (sequence classification)
    # or token candidates per mask (fill_mask), with scores. Requests may override both.
    return_labels: bool = False
    top_k: int | None = Field(None, ge=1)
    # token_classification: group tokens into entities as transformers' pipeline does
    # (none|simple|first|average|max); unset keeps KServe's per-position labels.
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] | None = None
    # rerank: a one-label cross-encoder scores sigmoid(logit), as sentence-transformers'
    # CrossEncoder does; true returns the raw logit instead.
    rerank_raw_scores: bool = False
    # text_embedding, sentence-transformers checkpoints: the prompt a request that names none
    # gets. default_prompt_name: one of config_sentence_transformers.json's `prompts`, in place
    # of its `default_prompt_name`; default_prompt: a prompt text (TEI's --default-prompt; ""
    # applies none). Unset: the checkpoint's default, as SentenceTransformer.encode.
    default_prompt_name: str | None = Field(None, min_length=1)
    default_prompt: str | None = None
    # text_embedding: true L2-normalises every vector (KServe, TEI, OpenAI); false returns
    # sentence-transformers' own vectors (normalised only by the checkpoint's Normalize module).
    normalize_embeddings: bool = True
    # TEI's auto_truncate: true cuts encoder inputs to max_model_len (KServe's behaviour);
    # false answers 413 for an input longer than that instead.
    auto_truncate: bool = True
    disable_log_requests: bool = False
    # KServe logs whole inputs by default; a few hundred characters keep logs useful and small.
    max_log_len: int | None = Field(DEFAULT_MAX_LOG_LEN, ge=0)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    # Backend-specific sections are validated by the backend that owns them (e.g. `vllm:`).
    vllm: dict[str, Any] | None = None
    onnxruntime: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "disable_postprocess" in data:
            data = dict(data)
            value = data.pop("disable_postprocess")
            if "return_raw_logits" in data and data["return_raw_logits"] != value:
                raise ValueError("disable_postprocess is an alias of return_raw_logits; give one")
            data["return_raw_logits"] = value
        if isinstance(data, dict) and "max_length" in data:  # KServe's deprecated alias
            data = dict(data)
            data.setdefault("max_model_len", data.pop("max_length"))
        for flag, key in GENERATION_FLAT_FLAGS.items():
            if isinstance(data, dict) and flag in data:
                # vLLM's flat flags (--generation-config, --tool-call-parser; HF_RUNTIME_<FLAG>)
                # given beside the model: each wins over, and sets, the generation section's key.
                data = dict(data)
                section = data.get("generation") or {}
                if isinstance(section, BaseModel):
                    section = section.model_dump()
                if isinstance(section, dict):
                    data["generation"] = {**section, key: _flat_value(section, key, data.pop(flag))}
        return data

    @field_validator("tensor_input_names", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("model_name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value or "/" in value or ":" in value:
            raise ValueError("model_name must be non-empty and contain no '/' or ':'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.return_probabilities and self.return_raw_logits:
            raise ValueError(
                "return_probabilities and return_raw_logits (disable_postprocess) are mutually "
                "exclusive: choose one"
            )
        if self.default_prompt_name is not None and self.default_prompt is not None:
            raise ValueError(
                "default_prompt_name (a prompt of the checkpoint) and default_prompt (a prompt "
                "text) are mutually exclusive: choose one"
            )
        if not self.model_id and not self.model_dir:
            raise ValueError("one of model_id or model_dir is required")
        if self.model_id and self.model_dir:
            raise ValueError("give model_id (a Hub id) or model_dir (a location), not both")
        return self

    @property
    def source(self) -> str:
        return self.model_id or self.model_dir or ""


def _sampling_mapping(value: Any) -> Any:
    """sampling_defaults as given: a mapping, or (the flat flag from the environment, --arg or
    --override-generation-config) its JSON (or YAML) text. max_new_tokens is named max_tokens."""
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object, e.g. {"temperature": 0.2}')
    if isinstance(value, dict) and "max_new_tokens" in value and "max_tokens" not in value:
        value = {("max_tokens" if k == "max_new_tokens" else k): v for k, v in value.items()}
    return value


def _flat_value(section: dict[str, Any], key: str, value: Any) -> Any:
    """What a flat flag sets `key` of the generation section to. sampling_defaults merges over
    the section's own, field by field: `{"temperature": 0.7}` from the environment changes the
    temperature and keeps the file's top_p."""
    if key != "sampling_defaults":
        return value
    given, current = _sampling_mapping(value), _sampling_mapping(section.get(key))
    if isinstance(current, dict) and isinstance(given, dict):
        return {**{k: v for k, v in current.items() if v is not None}, **given}
    return given


class RuntimeConfig(StrictSection):
    """Everything the service serves."""

    models: list[ModelConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> RuntimeConfig:
        if not self.models and not self.server.model_repository:
            raise ValueError("at least 1 model is required (or a server.model_repository)")
        names = [m.model_name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model_name must be unique; repeated: {', '.join(dupes)}")
        return self


MODEL_FLAGS: frozenset[str] = frozenset(ModelConfig.model_fields) | {
    "disable_postprocess",
    "max_length",
    *GENERATION_FLAT_FLAGS,
}
