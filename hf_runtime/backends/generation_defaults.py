"""The sampling defaults a checkpoint's generation_config.json sets (vLLM's `--generation-config`).

vLLM's OpenAI server fills each sampling field a request leaves unset from the model's
generation config (`ModelConfig.get_diff_sampling_param`, `--generation-config auto`, its
default): the non-default values of repetition_penalty, presence_penalty, frequency_penalty,
temperature, top_k, top_p, min_p, and max_new_tokens as the default max_tokens. Like vLLM,
`do_sample` is not read: a temperature in the file applies even beside `do_sample: false`.
Both backends read these values (huggingface from the checkpoint, vllm from its engine's model
config) and pass them through `checked_sampling_defaults`, which lays the configuration's own
(`generation.sampling_defaults`, vLLM's `--override-generation-config`; then
`generation.default_max_tokens` for a length neither sets) over them, so a model serves the
same defaults on either. No heavy imports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from hf_runtime.config import ModelConfig

logger = logging.getLogger("hf_runtime")

# vLLM's `available_params`, in its order.
GENERATION_CONFIG_FIELDS = (
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "max_new_tokens",
)


def diff_sampling_param(config: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM's `get_diff_sampling_param` over a generation config's non-default values
    (`GenerationConfig.to_diff_dict()`): the sampling fields set, `max_new_tokens` renamed
    `max_tokens`."""
    found = {
        name: config[name] for name in GENERATION_CONFIG_FIELDS if config.get(name) is not None
    }
    if "max_new_tokens" in found:
        found["max_tokens"] = found.pop("max_new_tokens")
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


# What the engines accept (hf_runtime.decoding.sampling.validate_sampling_params): a default
# out of range would fail every request that leaves the field unset, naming a field the client
# never sent, so it is dropped at load with a warning instead.
_FLOAT_RANGES: dict[str, Callable[[float], bool]] = {
    "temperature": lambda v: v >= 0,
    "top_p": lambda v: 0 < v <= 1,
    "min_p": lambda v: 0 <= v <= 1,
    "presence_penalty": lambda v: -2 <= v <= 2,
    "frequency_penalty": lambda v: -2 <= v <= 2,
    "repetition_penalty": lambda v: v > 0,
}


def _checked(name: str, value: Any) -> float | int | None:
    if name in _FLOAT_RANGES:
        number = _number(value)
        return number if number is not None and _FLOAT_RANGES[name](number) else None
    whole = _whole(value)
    if name == "top_k":
        # 0 and -1 both mean "off" (vLLM writes -1, SamplingParams 0).
        return None if whole is None or whole < -1 else max(whole, 0)
    if name == "max_tokens":
        return whole if whole is not None and whole >= 1 else None
    return None  # a field this runtime does not apply


def checked_sampling_defaults(
    config: ModelConfig, read: Callable[[], Mapping[str, Any]]
) -> dict[str, float | int]:
    """The defaults `config`'s model serves with, logged once (at load), named as
    SamplingParams fields. Lowest to highest: the checkpoint's values, then
    `generation.sampling_defaults` (vLLM's --override-generation-config) field by field;
    `generation.default_max_tokens` is the max_tokens where neither sets one.

    `read` returns `diff_sampling_param`'s mapping for the model; it is only called when
    `generation.generation_config` is "auto". Checkpoint values the engines would refuse are
    dropped, each with a warning (configured ones were validated with the configuration).
    """
    settings = config.generation
    layers: list[tuple[str, Mapping[str, float | int]]] = [
        ("generation_config.json", _checkpoint_defaults(config, read)),
        ("generation.sampling_defaults", settings.sampling_defaults.values()),
    ]
    if settings.default_max_tokens is not None:
        # Below every other source: only where none of them sets max_tokens.
        layers.insert(
            0, ("generation.default_max_tokens", {"max_tokens": settings.default_max_tokens})
        )
    defaults: dict[str, float | int] = {}
    source_of: dict[str, str] = {}
    for source, found in layers:  # lowest first: a later source wins
        defaults.update(found)
        source_of.update(dict.fromkeys(found, source))
    # One line: each value once, under the source it comes from.
    shown = {
        source: ", ".join(f"{k}={defaults[k]}" for k in sorted(defaults) if source_of[k] == source)
        for source, _ in layers
    }
    parts = [f"{source}: {values}" for source, values in shown.items() if values]
    if parts:
        logger.info(
            "model %s: sampling defaults from %s (for request fields left unset)",
            config.model_name, "; from ".join(parts),
        )  # fmt: skip
    else:
        logger.info("model %s: no sampling defaults: unset request fields get OpenAI's",
                    config.model_name)  # fmt: skip
    return defaults


def _checkpoint_defaults(
    config: ModelConfig, read: Callable[[], Mapping[str, Any]]
) -> dict[str, float | int]:
    name = config.model_name
    if not config.generation.uses_model_sampling_defaults:
        logger.info(
            "model %s: generation.generation_config is %s: the model's generation_config.json "
            "sampling values are ignored",
            name, config.generation.generation_config,
        )  # fmt: skip
        return {}
    defaults: dict[str, float | int] = {}
    for field, value in read().items():
        checked = _checked(field, value)
        if checked is None:
            logger.warning(
                "model %s: generation_config.json %s=%r is not a usable default; ignored",
                name, field, value,
            )  # fmt: skip
        else:
            defaults[field] = checked
    if not defaults:
        logger.info("model %s: generation_config.json sets no sampling defaults", name)
    return defaults
