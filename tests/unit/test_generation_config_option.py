"""`generation.generation_config` (vLLM's --generation-config): "auto" by default, "none" or
vLLM's "vllm" to ignore the model's generation_config.json; set in YAML, or flat like vLLM's
flag (environment, --arg, `python -m hf_runtime --generation-config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runtime.cli import serve_command
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.errors import ConfigError


def generation(config_args: dict[str, str], env: dict[str, str] | None = None) -> str:
    config = load_config(args={"model_dir": "/m", **config_args}, env=env or {})
    return config.models[0].generation.generation_config


def test_auto_by_default() -> None:
    settings = ModelConfig(model_dir="/m").generation
    assert settings.generation_config == "auto" and settings.uses_model_sampling_defaults


@pytest.mark.parametrize("mode", ["none", "vllm"])
def test_none_and_vllm_ignore_the_file(mode: str) -> None:
    settings = ModelConfig(model_dir="/m", generation={"generation_config": mode}).generation
    assert not settings.uses_model_sampling_defaults


def test_flat_flag_from_args_and_environment() -> None:
    assert generation({"generation_config": "none"}) == "none"
    assert generation({}, env={"HF_RUNTIME_GENERATION_CONFIG": "vllm"}) == "vllm"
    assert generation({"generation_config": "auto"}, {"HF_RUNTIME_GENERATION_CONFIG": "none"}) == (
        "auto"
    )


def test_flat_flag_keeps_the_rest_of_the_generation_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  - model_dir: /m\n    generation:\n      max_num_seqs: 3\n"
        "      generation_config: auto\n"
    )
    config = load_config(args={"config": str(path), "generation_config": "none"}, env={})
    settings = config.models[0].generation
    assert (settings.max_num_seqs, settings.generation_config) == (3, "none")
    assert load_config(args={"config": str(path)}, env={}).models[0].generation.max_num_seqs == 3


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="generation.generation_config"):
        generation({"generation_config": "/some/folder"})


def test_cli_takes_vllms_flag() -> None:
    for flag in ("--generation-config", "--generation_config"):
        command = serve_command(["--model_dir", "/m", flag, "vllm"])
        assert "generation_config=vllm" in command
