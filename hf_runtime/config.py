"""Configuration: one pydantic model per served model, the only home of defaults.

Sources, lowest to highest precedence:
  defaults < YAML file (HF_RUNTIME_CONFIG or `--arg config=PATH`, default configs/default.yaml)
  < environment variables HF_RUNTIME_<FLAG> < `bentoml serve --arg <flag>=<value>`.

A YAML file lists one or more models under `models:`. When `model_id` or `model_dir` comes
from the environment or `--arg`, exactly that one model is served (the file's models are
dropped); other flags from env/args apply to every model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hf_runtime.errors import ConfigError
from hf_runtime.tasks.names import Task

ENV_PREFIX = "HF_RUNTIME_"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "default.yaml"

MIB = 1 << 20
DEFAULT_MAX_LOG_LEN = 256
Dtype = Literal["auto", "float16", "float32", "bfloat16", "float", "half"]
BackendName = Literal["auto", "huggingface", "vllm"]
# The tool-call parsers of hf_runtime.protocols.openai.tool_parsers (vLLM's names).
ToolCallParser = Literal["hermes", "llama3_json", "mistral", "pythonic"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)


class BatchingConfig(_Strict):
    """Cross-request batching of encoder forward passes (one batcher per model)."""

    max_batch_size: int = Field(64, ge=1, description="Most texts in one forward pass.")
    max_batch_tokens: int = Field(
        16384, ge=1, description="Most padded tokens in one forward pass."
    )
    max_queue_size: int = Field(
        2048, ge=1, description="Most texts waiting; beyond it requests get 429 (back-pressure)."
    )


class GenerationConfig(_Strict):
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
    generation_config: Literal["auto", "none", "vllm"] = Field(
        "auto",
        description="vLLM's --generation-config: `auto` takes the sampling defaults of the "
        "model's generation_config.json (temperature, top_p, top_k, min_p, repetition, presence "
        "and frequency penalties; max_new_tokens as max_tokens) for the fields a request leaves "
        "unset; `none` (or vLLM's `vllm`) ignores them: OpenAI's defaults apply.",
    )

    @property
    def uses_model_sampling_defaults(self) -> bool:
        return self.generation_config == "auto"


class ServerConfig(_Strict):
    """Settings of the server as a whole (the YAML `server:` section, or HF_RUNTIME_<KEY>)."""

    api_key: list[str] = Field(
        default_factory=list,
        description="Keys that unlock every inference and metadata route (Authorization: "
        "Bearer <key> or x-api-key: <key>); several keys comma-separated. Empty: no key needed.",
        repr=False,
    )
    api_key_file: str | None = Field(
        None, description="A file holding keys, one per line (a mounted Kubernetes secret)."
    )
    protect_metrics: bool = Field(False, description="Require the API key on /metrics too.")
    max_request_bytes: int = Field(
        8 * MIB, ge=1024, description="Largest request body; larger ones get 413 unread."
    )
    drain_timeout: float = Field(
        30.0, ge=0, description="On SIGTERM, seconds to let in-flight requests finish."
    )
    log_format: Literal["text", "json"] = Field("text", description="Format of hf_runtime logs.")
    grpc_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="Port of the Open Inference Protocol V2 gRPC server (KServe's default "
        "8081); 0 turns it off.",
    )
    grpc_host: str | None = Field(
        None,
        description="Interface the gRPC server binds; default: the HTTP server's (BentoML's "
        "--host), so a loopback-only server stays loopback-only on gRPC too.",
    )
    bentoml_fast_path: bool = Field(
        True,
        description="Keep BentoML's per-request work off the inference routes where that loses "
        "nothing configured: no OpenTelemetry span unless BentoML tracing is configured, and "
        "dispatch straight to the protocol app (hf_runtime.fast_path). Off: BentoML's full stack.",
    )

    gil_switch_interval_ms: float = Field(
        1.0,
        gt=0,
        le=100,
        description="How long a thread may hold the GIL before another gets it (Python's "
        "default: 5 ms). Shorter lets the event loop and the inference thread take turns "
        "sooner, so the model's cores do not idle while HTTP work holds the GIL.",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_key")
    @classmethod
    def _keys_ok(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < 8 or not key.isascii() or not key.isprintable() or " " in key:
                raise ValueError(
                    "each api_key must be at least 8 printable ASCII characters without spaces"
                )
        return keys

    def read_api_keys(self) -> list[str]:
        """Every accepted key: `api_key` plus the lines of `api_key_file` (read now, so a
        rotated secret file takes effect on restart). Raises ConfigError when unreadable."""
        keys = list(self.api_key)
        if self.api_key_file:
            try:
                lines = Path(self.api_key_file).read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"server.api_key_file: cannot read it: {exc}") from None
            try:
                keys += ServerConfig(api_key=[ln.strip() for ln in lines if ln.strip()]).api_key
            except ValidationError:
                raise ConfigError(
                    f"server.api_key_file {self.api_key_file}: each line must be a key of at "
                    "least 8 printable ASCII characters without spaces"
                ) from None
            if not keys:
                raise ConfigError(f"server.api_key_file {self.api_key_file} holds no key")
        return keys


class ModelConfig(_Strict):
    """One served model. Field names are KServe huggingfaceserver's flags."""

    model_name: str = "model"
    model_id: str | None = None
    model_dir: str | None = None
    gguf_file: str | None = None
    model_revision: str | None = None
    tokenizer_revision: str | None = None
    dtype: Dtype = "auto"
    # Opt-in, encoder tasks on the huggingface backend, CPU: int8_dynamic runs the encoder's
    # Linear layers in int8. Faster but lossy (README's precision table); never implied by auto.
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
        for flag in GENERATION_FLAT_FLAGS:
            if isinstance(data, dict) and flag in data:
                # vLLM's flat flags (--generation-config, --tool-call-parser; HF_RUNTIME_<FLAG>)
                # given beside the model: each wins over, and sets, the generation section's key.
                data = dict(data)
                section = data.get("generation") or {}
                if isinstance(section, BaseModel):
                    section = section.model_dump()
                if isinstance(section, dict):
                    data["generation"] = {**section, flag: data.pop(flag)}
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
        if not self.model_id and not self.model_dir:
            raise ValueError("one of model_id or model_dir is required")
        if self.model_id and self.model_dir:
            raise ValueError("give model_id (a Hub id) or model_dir (a location), not both")
        return self

    @property
    def source(self) -> str:
        return self.model_id or self.model_dir or ""


class RuntimeConfig(_Strict):
    """Everything the service serves."""

    models: list[ModelConfig] = Field(min_length=1)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> RuntimeConfig:
        names = [m.model_name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model_name must be unique; repeated: {', '.join(dupes)}")
        return self


# vLLM's flat flags for keys of the generation section (generation.<flag>).
GENERATION_FLAT_FLAGS = ("generation_config", "tool_call_parser")
MODEL_FLAGS: frozenset[str] = frozenset(ModelConfig.model_fields) | {
    "disable_postprocess",
    "max_length",
    *GENERATION_FLAT_FLAGS,
}
SERVER_FLAGS: frozenset[str] = frozenset(ServerConfig.model_fields)
_MODEL_DEFINING = ("model_id", "model_dir", "gguf_file")
_NESTED = {"batching", "generation", "vllm"}
# HF_RUNTIME_* variables that are not flags: the config file, the conversion cache, and the
# address `make serve` / `python -m hf_runtime` bind (BentoML's --host; it cannot be read here).
_NON_FLAG_ENV = {ENV_PREFIX + "CONFIG", ENV_PREFIX + "CACHE_DIR", ENV_PREFIX + "HOST"}
ALL_FLAGS = MODEL_FLAGS | SERVER_FLAGS


def _format_validation_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return f"invalid configuration ({where}):\n" + "\n".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping with a `models:` list")
    unknown = set(data) - {"models", "server"}
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown top-level key(s) {sorted(unknown)}; "
            "allowed: models, server"
        )
    return data


def _env_flags(env: Mapping[str, str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in _NON_FLAG_ENV:
            continue
        flag = key[len(ENV_PREFIX) :].lower()
        if flag not in ALL_FLAGS:
            raise ConfigError(
                f"unknown environment variable {key}: allowed are "
                + ", ".join(ENV_PREFIX + f.upper() for f in sorted(ALL_FLAGS))
                + ", "
                + ", ".join(sorted(_NON_FLAG_ENV))
            )
        flags[flag] = value
    return flags


def _parse_scalar(flag: str, value: Any) -> Any:
    """Env vars and --arg values are strings; nested sections arrive as YAML/JSON text."""
    if isinstance(value, str) and flag in _NESTED:
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag}: expected a YAML/JSON mapping, got {value!r}") from None
    return value


def load_config(
    args: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> RuntimeConfig:
    """Merge every source into a validated RuntimeConfig, or raise ConfigError naming the key."""
    env = os.environ if env is None else env
    args = dict(args or {})
    path_value = args.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
    path = Path(path_value) if path_value else DEFAULT_CONFIG_PATH

    unknown_args = sorted(set(args) - ALL_FLAGS)
    if unknown_args:
        raise ConfigError(
            f"unknown argument(s) {unknown_args}; allowed: config, " + ", ".join(sorted(ALL_FLAGS))
        )
    merged = {**_env_flags(env), **args}
    server_overrides = {k: v for k, v in merged.items() if k in SERVER_FLAGS}
    overrides = {k: _parse_scalar(k, v) for k, v in merged.items() if k not in SERVER_FLAGS}

    data: dict[str, Any] = {}
    if any(k in overrides for k in _MODEL_DEFINING[:2]):
        models: list[dict[str, Any]] = [dict(overrides)]
        where = "environment/arguments"
        if path_value:  # an explicit file still supplies the server section
            data = _read_yaml(path)
    else:
        data = _read_yaml(path)
        raw_models = data.get("models") or []
        if not isinstance(raw_models, list) or not all(isinstance(m, dict) for m in raw_models):
            raise ConfigError(f"config file {path}: `models` must be a list of mappings")
        models = [{**m, **overrides} for m in raw_models]
        where = f"{path} + environment/arguments" if merged else str(path)
    server = data.get("server") or {}
    if not isinstance(server, dict):
        raise ConfigError(f"config file {path}: `server` must be a mapping")
    try:
        config = RuntimeConfig.model_validate(
            {"models": models, "server": {**server, **server_overrides}}
        )
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, where)) from None
    config.server.read_api_keys()  # an unreadable key file stops startup, not the first request
    return config
