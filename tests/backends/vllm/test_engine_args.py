"""Engine arguments from our configuration (imports vLLM, starts no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hf_runtime.backends.vllm.config import parse_vllm_section
from hf_runtime.errors import ConfigError
from tests.backends.vllm.conftest import model_config, requires_vllm, source_for

pytestmark = [requires_vllm, pytest.mark.vllm]


def engine_args(folder: Path, *, cpu_build: bool = True, **overrides: Any) -> Any:
    from hf_runtime.backends.vllm.async_llm import build_engine_args

    config = model_config(folder, **overrides)
    section = parse_vllm_section(config.vllm)
    runner = "pooling" if config.task and config.task.is_encoder else "generate"
    return build_engine_args(config, source_for(folder), section, runner, cpu_build=cpu_build)


def test_model_settings_become_engine_arguments(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["gpt2-chat"]
    args = engine_args(folder, model_name="chat", max_model_len=64, trust_remote_code=True)
    assert (args.model, args.tokenizer) == (str(folder), str(folder))
    assert (args.served_model_name, args.dtype, args.max_model_len) == ("chat", "float32", 64)
    assert args.trust_remote_code and args.runner == "generate"
    assert args.tensor_parallel_size == 1  # never every visible GPU
    assert args.max_num_seqs == 16  # generation.max_num_seqs
    assert args.enforce_eager is True
    assert args.kv_cache_memory_bytes == 1 << 30  # kv_cache_space: 1 (GiB)


def test_the_vllm_section_overrides_and_passes_through(tiny_models: dict[str, Path]) -> None:
    section = {
        "max_num_seqs": 4,
        "enforce_eager": False,
        "seed": 11,
        "max_model_len": 96,
        "lora_modules": [{"name": "a", "path": "/a"}],
        "max_lora_rank": 8,
        "engine_args": {"data_parallel_size": 1, "generation_config": "vllm"},
    }
    args = engine_args(tiny_models["gpt2-chat"], vllm=section)
    assert (args.max_num_seqs, args.enforce_eager, args.seed, args.max_model_len) == (
        4,
        False,
        11,
        96,
    )
    assert args.enable_lora and args.max_lora_rank == 8
    assert (args.data_parallel_size, args.generation_config) == (1, "vllm")


def test_eager_is_only_forced_on_the_cpu_build(tiny_models: dict[str, Path]) -> None:
    from vllm import AsyncEngineArgs

    args = engine_args(tiny_models["gpt2-chat"], vllm={}, cpu_build=False)
    assert args.enforce_eager == AsyncEngineArgs.enforce_eager


def test_conflicting_max_model_len_is_a_config_error(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"max_model_len \(64\) and vllm.max_model_len \(96\)"):
        engine_args(tiny_models["gpt2-chat"], max_model_len=64, vllm={"max_model_len": 96})


@pytest.mark.parametrize("section", [{"swap_space": 4}, {"engine_args": {"no_such_argument": 1}}])
def test_arguments_the_installed_vllm_lacks_are_config_errors(
    tiny_models: dict[str, Path], section: dict[str, Any]
) -> None:
    name = next(iter(section.get("engine_args", section)))
    with pytest.raises(ConfigError, match=f"has no engine argument.*{name}"):
        engine_args(tiny_models["gpt2-chat"], vllm=section)


@requires_vllm
def test_auto_dtype_follows_the_checkpoint_like_the_huggingface_backend() -> None:
    from hf_runtime.backends.vllm.async_llm import engine_dtype

    assert engine_dtype("auto", {"dtype": "float32"}) == "float32"
    assert engine_dtype("auto", {"torch_dtype": "bfloat16"}) == "bfloat16"
    assert engine_dtype("auto", {}) == "auto"
    assert engine_dtype("float16", {"dtype": "float32"}) == "float16"


def test_prefix_caching_follows_generation_prefix_cache_unless_the_section_says(
    tiny_models: dict[str, Path],
) -> None:
    folder = tiny_models["gpt2-chat"]
    assert engine_args(folder).enable_prefix_caching is True  # on by default
    off = {"prefix_cache": {"enabled": False}}
    assert engine_args(folder, generation=off).enable_prefix_caching is False
    both = engine_args(folder, generation=off, vllm={"enable_prefix_caching": True})
    assert both.enable_prefix_caching is True  # the vllm section wins
    with pytest.raises(ConfigError, match="engine_args repeats"):
        engine_args(folder, vllm={"engine_args": {"enable_prefix_caching": False}})
