"""What a sentence-transformers SparseEncoder (SPLADE) checkpoint says, read once at load.

Served: `modules.json` listing a masked-LM Transformer in the checkpoint's root (v6's
`Transformer` with `transformer_task: fill-mask`, or the legacy `MLMTransformer`) and then one
`SpladePooling` (`pooling_strategy` max or sum, `activation_function` relu or log1p_relu).
Every other SparseEncoder stack is a ConfigError naming its modules: the inference-free kind
(a `Router` sending queries to a `SparseStaticEmbedding`), CSR (`SparseAutoEncoder` over a dense
model), a `Dense` after the pooling, or a custom module; serving the model without them would
give silently wrong vectors. `config_sentence_transformers.json` gives the prompts, the
default prompt's name and `max_active_dims` (keep only the largest values of each vector).

`is_sparse_encoder` decides task inference: a ...ForMaskedLM checkpoint whose modules.json
lists a SpladePooling, or that sentence-transformers saved as a SparseEncoder, is a
sparse_embedding model rather than a fill-mask one. Reads JSON only: no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_runtime.backends import SPARSE_ACTIVATIONS, SPARSE_STRATEGIES, SparsePooling
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.st_checkpoint import (
    MODULES_FILE,
    SETTINGS_FILE,
    read_json,
    read_prompt_settings,
)

SPARSE_ENCODER_TYPE = "SparseEncoder"  # config_sentence_transformers.json's model_type
POOLING_MODULE = "SpladePooling"
TRANSFORMER_MODULES = ("Transformer", "MLMTransformer")
SUPPORTED_STACK = "a masked-LM Transformer (or MLMTransformer) then a SpladePooling"


@dataclass(frozen=True)
class SparseEncoderSettings:
    """A SparseEncoder checkpoint's pooling, prompts and active-dimension limit."""

    pooling: SparsePooling = SparsePooling()
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    max_active_dims: int | None = None


def is_sparse_encoder(model_path: Path, hf_config: dict[str, Any]) -> bool:
    """Whether the checkpoint was saved as a SparseEncoder (its modules.json lists a
    SpladePooling, or its sentence-transformers config says SparseEncoder). Unreadable files
    say no: the fill-mask task then loads it as it did."""
    model_path = Path(model_path)
    settings = _json_or_none(model_path / SETTINGS_FILE)
    if isinstance(settings, dict) and settings.get("model_type") == SPARSE_ENCODER_TYPE:
        return True
    modules = _json_or_none(model_path / MODULES_FILE)
    return isinstance(modules, list) and any(
        isinstance(entry, dict) and _class_name(entry) == POOLING_MODULE for entry in modules
    )


def read_sparse_settings(model_path: Path) -> SparseEncoderSettings:
    """The checkpoint's settings; ConfigError for an unreadable file or an unsupported module
    stack. Without modules.json: max-pooled relu (SPLADE v2 and later), as `task:
    sparse_embedding` on a bare ...ForMaskedLM checkpoint means."""
    model_path = Path(model_path)
    prompts, default_name, max_active_dims = _read_model_settings(model_path / SETTINGS_FILE)
    modules_file = model_path / MODULES_FILE
    if not modules_file.is_file():
        return SparseEncoderSettings(SparsePooling(), prompts, default_name, max_active_dims)
    entries = read_json(modules_file)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{modules_file}: expected a list of module entries")
    kinds = [_class_name(entry) for entry in entries]
    if (
        len(entries) != 2
        or kinds[0] not in TRANSFORMER_MODULES
        or kinds[1] != POOLING_MODULE
        or not all(str(e.get("type", "")).startswith("sentence_transformers.") for e in entries)
    ):
        names = ", ".join(str(e.get("type", "?")).rpartition(".")[2] for e in entries)
        raise ConfigError(
            f"{modules_file}: SparseEncoder modules [{names}] are not supported; only "
            f"{SUPPORTED_STACK} are (inference-free Router / SparseStaticEmbedding and CSR "
            "SparseAutoEncoder models are not served)"
        )
    if str(entries[0].get("path", "")) not in ("", "."):
        raise ConfigError(
            f"{modules_file}: the Transformer is in {entries[0]['path']!r}; only a "
            "Transformer saved in the checkpoint's root folder is supported"
        )
    _check_transformer_task(model_path)
    pooling = _splade_pooling(model_path / str(entries[1].get("path", "")) / "config.json")
    return SparseEncoderSettings(pooling, prompts, default_name, max_active_dims)


def _check_transformer_task(model_path: Path) -> None:
    """The Transformer must read the masked-LM logits (fill-mask), not the hidden states."""
    config = _json_or_none(model_path / "sentence_bert_config.json")
    task = config.get("transformer_task", "fill-mask") if isinstance(config, dict) else None
    if task not in (None, "fill-mask"):
        raise ConfigError(
            f"{model_path / 'sentence_bert_config.json'}: transformer_task {task!r}; a "
            "SpladePooling needs the masked-LM logits (transformer_task: fill-mask)"
        )


def _splade_pooling(path: Path) -> SparsePooling:
    config = read_json(path) if path.is_file() else {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a JSON object")
    strategy = config.get("pooling_strategy", "max")
    activation = config.get("activation_function", "relu")
    if strategy not in SPARSE_STRATEGIES:
        raise ConfigError(
            f"{path}: pooling_strategy {strategy!r} is not one of {', '.join(SPARSE_STRATEGIES)}"
        )
    if activation not in SPARSE_ACTIVATIONS:
        raise ConfigError(
            f"{path}: activation_function {activation!r} is not one of "
            f"{', '.join(SPARSE_ACTIVATIONS)}"
        )
    return SparsePooling(strategy, activation)


def _read_model_settings(path: Path) -> tuple[dict[str, str], str | None, int | None]:
    """(prompts, default prompt name, max_active_dims) of config_sentence_transformers.json."""
    prompts, default_name, _ = read_prompt_settings(path)
    settings = read_json(path) if path.is_file() else {}
    limit = settings.get("max_active_dims") if isinstance(settings, dict) else None
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{path}: max_active_dims must be a positive integer or null")
    return prompts, default_name, limit


def _class_name(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rpartition(".")[2]


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
