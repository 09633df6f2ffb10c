"""What a sentence-transformers checkpoint says about its embeddings, read once at load.

`modules.json` lists the modules `SentenceTransformer` chains: a Transformer (the model in the
checkpoint's root), optionally a WeightedLayerPooling, a Pooling, then any of Dense, LayerNorm,
Normalize and Dropout (a no-op at inference). Each is described here by what it computes
(`hf_runtime.backends.SentenceModule`, `LayerWeighting`); the backend runs them. Any other
module type (Router/Asym, StaticEmbedding, CNN, LSTM, a custom class, ...) is a ConfigError
naming it: serving the model without it would give silently wrong vectors.
`config_sentence_transformers.json` gives the prompts, the default prompt's name and
`truncate_dim`.

Without `modules.json` the model is mean-pooled, as KServe does (a `1_Pooling/config.json`
alone still picks the pooling modes). Reads JSON only: no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_runtime.backends import (
    POOLING_MODES,
    DenseModule,
    LayerNormModule,
    LayerWeighting,
    NormalizeModule,
    SentenceModule,
)
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.hf_config import hf_config_or_empty

MODULES_FILE = "modules.json"
SETTINGS_FILE = "config_sentence_transformers.json"
DEFAULT_POOLING = ("mean",)
# The module types served, by class name (sentence_transformers.models.Dense in v2-v5,
# sentence_transformers.base.modules.dense.Dense in v6, ...).
SUPPORTED_MODULES = (
    "Transformer",
    "WeightedLayerPooling",
    "Pooling",
    "Dense",
    "LayerNorm",
    "Normalize",
    "Dropout",
)
# sentence-transformers' legacy Pooling flags, in the order it concatenates the modes.
_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_VECTOR = "sentence_embedding"  # the feature Dense and Normalize must read and write


@dataclass(frozen=True)
class SentenceTransformerSettings:
    """A checkpoint's embedding pipeline after the Transformer, and its prompts."""

    pooling: tuple[str, ...] = DEFAULT_POOLING
    include_prompt: bool = True
    pooled_dimension: int | None = None  # Pooling's embedding_dimension (the hidden size)
    modules: tuple[SentenceModule, ...] = ()
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    layer_weighting: LayerWeighting | None = None


def read_settings(model_path: Path) -> SentenceTransformerSettings:
    """The checkpoint's settings; ConfigError for an unreadable file or unsupported module."""
    model_path = Path(model_path)
    prompts, default_name, truncate_dim = read_prompt_settings(model_path / SETTINGS_FILE)
    entries = (
        read_json(model_path / MODULES_FILE) if (model_path / MODULES_FILE).is_file() else None
    )
    if entries is None:
        fallback = model_path / "1_Pooling" / "config.json"
        pooling, include_prompt, pooled = (
            _pooling(read_json(fallback)) if fallback.is_file() else (DEFAULT_POOLING, True, None)
        )
        return SentenceTransformerSettings(
            pooling, include_prompt, pooled, (), prompts, default_name, truncate_dim
        )
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{model_path / MODULES_FILE}: expected a list of module entries")
    kinds = [_module_kind(entry) for entry in entries]
    weighting = None
    if kinds[1:2] == ["WeightedLayerPooling"]:
        weighting = _layer_weighting(model_path, _folder(model_path, entries[1]))
        entries, kinds = entries[:1] + entries[2:], kinds[:1] + kinds[2:]
    if kinds[:2] != ["Transformer", "Pooling"] or "WeightedLayerPooling" in kinds:
        raise ConfigError(
            f"{model_path / MODULES_FILE}: modules {kinds}: only a Transformer, a "
            "WeightedLayerPooling or not, a Pooling, then Dense / LayerNorm / Normalize / "
            "Dropout modules are supported"
        )
    if str(entries[0].get("path", "")) not in ("", "."):
        raise ConfigError(
            f"{model_path / MODULES_FILE}: the Transformer is in {entries[0]['path']!r}; only a "
            "Transformer saved in the checkpoint's root folder is supported"
        )
    pooling, include_prompt, pooled = _pooling(
        read_json(_folder(model_path, entries[1]) / "config.json")
    )
    modules: list[SentenceModule] = []
    for entry, kind in zip(entries[2:], kinds[2:], strict=True):
        module = _sentence_module(kind, _folder(model_path, entry))
        if module is not None:
            modules.append(module)
    return SentenceTransformerSettings(
        pooling,
        include_prompt,
        pooled,
        tuple(modules),
        prompts,
        default_name,
        truncate_dim,
        weighting,
    )


def _layer_weighting(model_path: Path, folder: Path) -> LayerWeighting | None:
    """A WeightedLayerPooling; None when the model does not output every layer's states
    (`output_hidden_states` in its config.json), where sentence-transformers skips it too."""
    if not hf_config_or_empty(model_path).get("output_hidden_states"):
        return None
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise ConfigError(f"{folder / 'config.json'} is not a JSON object")
    start = config.get("layer_start", 4)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ConfigError(f"{folder / 'config.json'}: layer_start must be an integer >= 0")
    return LayerWeighting(str(folder), start, _dimension(config, "num_hidden_layers", folder))


def _module_kind(entry: dict[str, Any]) -> str:
    kind = str(entry.get("type", ""))
    package, _, name = kind.rpartition(".")
    if not package.startswith("sentence_transformers") or name not in SUPPORTED_MODULES:
        raise ConfigError(
            f"sentence-transformers module {kind!r} (modules.json, path "
            f"{entry.get('path', '')!r}) is not supported; supported module types: "
            f"{', '.join(SUPPORTED_MODULES)}"
        )
    return name


def _folder(model_path: Path, entry: dict[str, Any]) -> Path:
    return model_path / str(entry.get("path", ""))


def _pooling(config: Any) -> tuple[tuple[str, ...], bool, int | None]:
    """(modes, include_prompt, embedding_dimension) of a Pooling config: the `pooling_mode`
    name or list (v6), or the legacy `pooling_mode_*` flags (mean when none is on)."""
    if not isinstance(config, dict):
        raise ConfigError("the Pooling module's config.json is not a JSON object")
    value = config.get("pooling_mode")
    if isinstance(value, (str, list)):
        names = [value] if isinstance(value, str) else value
        modes = tuple(_pooling_name(str(name)) for name in names)
    else:
        modes = tuple(name for flag, name in _POOLING_FLAGS if config.get(flag))
    dimension = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    include_prompt = config.get("include_prompt", True)
    return (
        modes or DEFAULT_POOLING,
        include_prompt is not False,
        dimension if isinstance(dimension, int) else None,
    )


def _pooling_name(name: str) -> str:
    mode = name.removesuffix("_tokens").removesuffix("_token")
    if mode not in POOLING_MODES:
        raise ConfigError(f"unknown pooling mode {name!r}; known: {', '.join(POOLING_MODES)}")
    return mode


def _sentence_module(kind: str, folder: Path) -> SentenceModule | None:
    if kind == "Normalize":
        config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
        _check_feature(kind, folder, config)
        return NormalizeModule()
    if kind == "Dropout":
        return None  # inactive at inference
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise ConfigError(f"{folder / 'config.json'} is not a JSON object")
    if kind == "Dense":
        _check_feature(kind, folder, config)
        return DenseModule(
            folder=str(folder),
            in_features=_dimension(config, "in_features", folder),
            out_features=_dimension(config, "out_features", folder),
            bias=bool(config.get("bias", True)),
            # sentence-transformers' constructor default, when the config names none
            activation=str(config.get("activation_function", "torch.nn.modules.activation.Tanh")),
            residual=bool(config.get("use_residual", False)),
        )
    if kind == "LayerNorm":
        return LayerNormModule(str(folder), _dimension(config, "dimension", folder))
    raise ConfigError(f"sentence-transformers module {kind} is not supported")


def _check_feature(kind: str, folder: Path, config: dict[str, Any]) -> None:
    for key in ("module_input_name", "module_output_name"):
        name = config.get(key)
        if name is not None and name != _VECTOR:
            raise ConfigError(
                f"{folder}: a {kind} on {name!r} is not supported (only on the pooled {_VECTOR!r})"
            )


def _dimension(config: dict[str, Any], key: str, folder: Path) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{folder / 'config.json'}: {key} must be a positive integer")
    return value


def read_prompt_settings(path: Path) -> tuple[dict[str, str], str | None, int | None]:
    if not path.is_file():
        return {}, None, None
    settings = read_json(path)
    if not isinstance(settings, dict):
        raise ConfigError(f"{path} is not a JSON object")
    prompts = settings.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()
    ):
        raise ConfigError(f"{path}: prompts must map names to prompt texts")
    default_name = settings.get("default_prompt_name")
    if default_name is not None and default_name not in prompts:
        raise ConfigError(
            f"{path}: default_prompt_name {default_name!r} is not one of the prompts "
            f"({', '.join(prompts) or 'none'})"
        )
    truncate_dim = settings.get("truncate_dim")
    if truncate_dim is not None and (
        isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int) or truncate_dim < 1
    ):
        raise ConfigError(f"{path}: truncate_dim must be a positive integer or null")
    return dict(prompts), default_name, truncate_dim


def read_json(path: Path) -> Any:
    """A checkpoint JSON file's contents; ConfigError when missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from None
