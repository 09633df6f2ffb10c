"""The server section: settings of the server as a whole (YAML `server:`, HF_RUNTIME_<KEY>)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from hf_runtime.config.base import MIB, StrictSection
from hf_runtime.config.key_file import read_key_file


class ServerConfig(StrictSection):
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
    exit_on_load_failure: bool = Field(
        False,
        description="Exit the process (code 3) when a model fails to load, as KServe's model "
        "server does, so an orchestrator restarts it and shows the crash; off (the default for "
        "`bentoml serve`), the model stays FAILED, with its reason on every route, and the "
        "other models serve.",
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

    model_repository: str | None = Field(
        None,
        description="A folder whose sub-folders are Hugging Face checkpoints (each optionally "
        "with an hf-runtime.yaml of model settings) or LoRA adapters, loaded and unloaded by "
        "folder name through the V2 model repository API (and /v1/load_lora_adapter).",
    )
    model_repository_load: list[str] = Field(
        default_factory=list,
        description="Folders of model_repository to load at startup (comma-separated; `*`: "
        "all); the others load when asked.",
    )
    allow_runtime_lora_paths: bool = Field(
        False,
        description="Let POST /v1/load_lora_adapter load an adapter from any `lora_path` on the "
        "server's disk (what vLLM allows only with VLLM_ALLOW_RUNTIME_LORA_UPDATING). Off: "
        "only the model repository's adapter folders load, by name.",
    )
    response_store_max_count: int = Field(
        1024,
        ge=0,
        description="Most responses the OpenAI Responses API keeps (`store: true`, OpenAI's "
        "default) for previous_response_id, GET /v1/responses/{id} and its input_items, per "
        "process; the oldest go first. 0 turns the store off: nothing is kept, answers say "
        "`store: false` and previous_response_id is a 400.",
    )
    response_store_max_bytes: int = Field(
        64 * MIB,
        ge=1024,
        description="Most bytes (their JSON) the stored responses hold together; a response "
        "larger than this alone is not kept.",
    )
    response_store_max_age_s: float = Field(
        3600.0, gt=0, description="Seconds a stored response is kept at most."
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

    @field_validator("model_repository_load", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
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
            keys += read_key_file(
                self.api_key_file, check=lambda found: ServerConfig(api_key=found).api_key
            )
        return keys
