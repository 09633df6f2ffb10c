"""Where configuration comes from, merged into one validated RuntimeConfig.

Sources, lowest to highest precedence:
  defaults < YAML file (HF_RUNTIME_CONFIG or `--arg config=PATH`, default configs/default.yaml)
  < environment variables HF_RUNTIME_<FLAG> < `bentoml serve --arg <flag>=<value>`.

A YAML file lists one or more models under `models:`. When `model_id` or `model_dir` comes
from the environment or `--arg`, exactly that one model is served (the file's models are
dropped); other flags from env/args apply to every model. A `model_repository` from the
environment or `--arg`, with no model flags and no config file named, serves that
repository's folders alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hf_runtime.config.model import MODEL_FLAGS, RuntimeConfig
from hf_runtime.config.server import ServerConfig
from hf_runtime.errors import ConfigError

ENV_PREFIX = "HF_RUNTIME_"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "default.yaml"

SERVER_FLAGS: frozenset[str] = frozenset(ServerConfig.model_fields)
_MODEL_DEFINING = ("model_id", "model_dir", "gguf_file")
_NESTED = {"batching", "generation", "vllm", "onnxruntime"}
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


CONFIG_PATH_HINT = "(set HF_RUNTIME_CONFIG or --arg config=PATH)"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} {CONFIG_PATH_HINT}") from None
    except OSError as exc:  # a folder, no permission: say so in one line, no traceback
        raise ConfigError(
            f"config file {path} cannot be read ({exc.strerror or exc}) {CONFIG_PATH_HINT}"
        ) from None
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
    models: list[dict[str, Any]]
    if "model_repository" in server_overrides and not path_value and not overrides:
        # A model repository alone (KServe's --model_repository): its folders, not the
        # default file's models.
        models = []
        where = "environment/arguments"
    elif any(k in overrides for k in _MODEL_DEFINING[:2]):
        models = [dict(overrides)]
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
