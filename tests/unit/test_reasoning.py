"""generation.reasoning_parser: the splitter (vLLM 0.32's readings, whole and streamed with the
tags split anywhere), the config key, vLLM's flat and CLI flags, and the TextGenerator property
the protocols read it from on the huggingface backend (the vllm backend's is in
tests/backends/vllm/test_reasoning_parser.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import get_args

import pytest

from hf_runtime.cli import serve_command
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.config.model import ReasoningParser
from hf_runtime.errors import ConfigError
from hf_runtime.reasoning import REASONING_PARSERS, Split, reasoning_splitter
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from tests.loading import load_generative_model
from tests.unit.test_cli import args_of

CALL = '<tool_call>{"x":1}</tool_call>'
# (parser, model output, reasoning, content): what vLLM 0.32's own parsers return for these
# (their `extract_reasoning`, None written as "").
VLLM_READINGS = [
    ("deepseek_r1", "<think>abc</think>xyz", "abc", "xyz"),
    ("deepseek_r1", "abc</think>xyz", "abc", "xyz"),
    ("deepseek_r1", "abc xyz", "abc xyz", ""),
    ("deepseek_r1", "<think>abc xyz", "abc xyz", ""),
    ("deepseek_r1", "abc</think>", "abc", ""),
    ("deepseek_r1", "<think>a</think>b</think>c", "a", "b</think>c"),
    ("deepseek_r1", f"abc{CALL}", f"abc{CALL}", ""),
    ("deepseek_r1", "abc</think>\n\nxyz", "abc", "\n\nxyz"),
    ("qwen3", "<think>abc</think>xyz", "abc", "xyz"),
    ("qwen3", "abc</think>xyz", "abc", "xyz"),
    ("qwen3", "abc xyz", "abc xyz", ""),
    ("qwen3", "pre<think>abc</think>xyz", "preabc", "xyz"),
    ("qwen3", "<think>a</think>b</think>c", "a", "bc"),
    ("qwen3", f"abc{CALL}", "abc", CALL),
    ("qwen3", "abc  \n</think>xyz", "abc  \n", "xyz"),
]


def streamed(parser: str, text: str, size: int) -> Split:
    splitter = reasoning_splitter(parser)
    assert splitter is not None
    out = Split()
    for start in range(0, len(text), size):
        out = out.merge(splitter.feed(text[start : start + size], 1))
    return out.merge(splitter.finish())


@pytest.mark.parametrize(("parser", "text", "reasoning", "content"), VLLM_READINGS)
def test_the_splitter_reads_like_vllm(parser: str, text: str, reasoning: str, content: str) -> None:
    splitter = reasoning_splitter(parser)
    assert splitter is not None
    assert splitter.split(text) == Split(reasoning, content)
    for size in (1, 2, 3, 5, len(text)):  # tags whole (one token) or split over deltas
        assert streamed(parser, text, size) == Split(reasoning, content)


def test_a_possible_tag_is_held_back_until_it_is_decided() -> None:
    splitter = reasoning_splitter("deepseek_r1")
    assert splitter is not None
    assert splitter.feed("think</th", 3) == Split("think", "")
    assert splitter.feed("is", 1) == Split("</this", "")  # not a tag after all
    assert splitter.feed("</thi", 1) == Split()
    assert splitter.feed("nk>ok<", 1) == Split("", "ok<")  # content: nothing held
    assert splitter.reasoning_tokens == 6  # the deltas that came while it was open
    assert splitter.finish() == Split()


def test_thinking_disabled_and_no_parser_leave_the_text_alone() -> None:
    assert reasoning_splitter(None) is None
    assert reasoning_splitter("qwen3", {"enable_thinking": False}) is None
    assert reasoning_splitter("qwen3", {"enable_thinking": True}) is not None
    assert reasoning_splitter("deepseek_r1", {"enable_thinking": False}) is not None  # as vLLM


def test_the_config_names_are_the_splitters() -> None:
    assert set(get_args(ReasoningParser)) == set(REASONING_PARSERS)


def test_the_key_is_off_by_default_and_strict(tmp_path: Path) -> None:
    assert ModelConfig(model_dir="/m").generation.reasoning_parser is None
    config = ModelConfig(model_dir="/m", generation={"reasoning_parser": "qwen3"})
    assert config.generation.reasoning_parser == "qwen3"
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - model_dir: /m\n    generation: {reasoning_parser: granite}\n")
    with pytest.raises(ConfigError, match="generation.reasoning_parser"):
        load_config(args={"config": str(path)}, env={})


def test_vllms_flag_env_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - model_dir: /m\n    generation: {max_num_seqs: 3}\n")
    for sources in (
        {"args": {"config": str(path), "reasoning_parser": "deepseek_r1"}, "env": {}},
        {"args": {"config": str(path)}, "env": {"HF_RUNTIME_REASONING_PARSER": "deepseek_r1"}},
    ):
        (model,) = load_config(**sources).models  # type: ignore[arg-type]
        assert model.generation.reasoning_parser == "deepseek_r1"
        assert model.generation.max_num_seqs == 3
    command = serve_command(["--model_dir", "/m", "--reasoning-parser", "qwen3"])
    assert args_of(command) == {"model_dir": "/m", "reasoning_parser": "qwen3"}
    with pytest.raises(ConfigError, match="reasoning_parser"):
        serve_command(["--model_dir", "/m", "--reasoning-parser", "granite"])


def test_a_generative_model_names_its_reasoning_parser(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["gpt2-chat"]
    source = ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))
    for parser in ("deepseek_r1", None):
        config = ModelConfig(
            model_name="gen", model_dir=str(folder), generation={"reasoning_parser": parser}
        )
        model = asyncio.run(load_generative_model(config, source, Task.text_generation))
        try:
            assert model.reasoning_parser == parser
        finally:
            asyncio.run(model.aclose())


def test_tags_a_tokenizer_marks_special_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from hf_runtime.runtime.generative_model import _warn_if_thinking_is_skipped

    config = ModelConfig(model_dir="/m", generation={"reasoning_parser": "qwen3"})
    _warn_if_thinking_is_skipped(config, SimpleNamespace(all_special_tokens=["<|im_end|>"]))
    assert not caplog.records
    _warn_if_thinking_is_skipped(config, SimpleNamespace(all_special_tokens=["</think>"]))
    assert "</think> as special" in caplog.text
