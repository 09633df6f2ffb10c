"""Configuration: the sections (`server`, `model`), where values come from (`sources`).

One module per concern: `base` (strict sections), `server` (the server section and its key
file), `model` (one served model and its batching / generation sections), `sources` (YAML,
HF_RUNTIME_* variables and `--arg`s merged and validated). Import from here.
"""

from hf_runtime.config.base import MIB, StrictSection
from hf_runtime.config.model import (
    DEFAULT_MAX_LOG_LEN,
    GENERATION_FLAT_FLAGS,
    MODEL_FLAGS,
    BackendName,
    BatchingConfig,
    Dtype,
    GenerationConfig,
    ModelConfig,
    RuntimeConfig,
    ToolCallParser,
)
from hf_runtime.config.server import ServerConfig
from hf_runtime.config.sources import (
    _NON_FLAG_ENV,
    ALL_FLAGS,
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    REPO_ROOT,
    SERVER_FLAGS,
    load_config,
)
from hf_runtime.errors import ConfigError

__all__ = [
    "ALL_FLAGS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_MAX_LOG_LEN",
    "ENV_PREFIX",
    "GENERATION_FLAT_FLAGS",
    "MIB",
    "MODEL_FLAGS",
    "REPO_ROOT",
    "SERVER_FLAGS",
    "_NON_FLAG_ENV",
    "BackendName",
    "BatchingConfig",
    "ConfigError",
    "Dtype",
    "GenerationConfig",
    "ModelConfig",
    "RuntimeConfig",
    "ServerConfig",
    "StrictSection",
    "ToolCallParser",
    "load_config",
]
