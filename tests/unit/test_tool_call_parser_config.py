"""generation.tool_call_parser: the config key, vLLM's flat flag and CLI flags, and the
TextGenerator property the OpenAI layer reads it from."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hf_runtime.cli import serve_command
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from tests.loading import load_generative_model
from tests.unit.test_cli import args_of


def test_the_key_takes_the_parser_names(tmp_path: Path) -> None:
    config = ModelConfig(model_dir="/m", generation={"tool_call_parser": "llama3_json"})
    assert config.generation.tool_call_parser == "llama3_json"
    assert ModelConfig(model_dir="/m").generation.tool_call_parser is None
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - model_dir: /m\n    generation: {tool_call_parser: granite}\n")
    with pytest.raises(ConfigError, match="generation.tool_call_parser"):
        load_config(args={"config": str(path)}, env={})


def test_the_flat_flag_sets_it_beside_the_sections_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  - model_dir: /m\n    generation: {chat_template: t.jinja, max_num_seqs: 3}\n"
    )
    for sources in (
        {"args": {"config": str(path), "tool_call_parser": "mistral"}, "env": {}},
        {"args": {"config": str(path)}, "env": {"HF_RUNTIME_TOOL_CALL_PARSER": "mistral"}},
    ):
        (model,) = load_config(**sources).models  # type: ignore[arg-type]
        assert model.generation.tool_call_parser == "mistral"
        assert model.generation.chat_template == "t.jinja"
        assert model.generation.max_num_seqs == 3


def test_vllms_cli_flags() -> None:
    command = serve_command(
        ["--model_dir", "/m", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    )
    assert args_of(command) == {"model_dir": "/m", "tool_call_parser": "hermes"}
    assert args_of(serve_command(["--model_dir", "/m", "--tool_call_parser", "pythonic"])) == {
        "model_dir": "/m",
        "tool_call_parser": "pythonic",
    }
    with pytest.raises(ConfigError, match="requires --tool-call-parser"):
        serve_command(["--model_dir", "/m", "--enable-auto-tool-choice"])
    with pytest.raises(ConfigError, match="tool_call_parser"):
        serve_command(["--model_dir", "/m", "--tool-call-parser", "granite"])


def test_a_generative_model_names_its_parser(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["gpt2-chat"]
    source = ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))
    for parser in ("pythonic", None):
        config = ModelConfig(
            model_name="gen", model_dir=str(folder), generation={"tool_call_parser": parser}
        )
        model = asyncio.run(load_generative_model(config, source, Task.text_generation))
        try:
            assert model.tool_call_parser == parser
        finally:
            asyncio.run(model.aclose())
