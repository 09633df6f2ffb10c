"""The vllm configuration section, environment defaults and the checks made before an engine
starts (none of these needs vLLM). The vllm:* metrics text: tests/observability."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hf_runtime.backends.vllm.config import ALLOWED_KEYS, VLLMEngineConfig, parse_vllm_section
from hf_runtime.backends.vllm.env import CPU_DEFAULTS, apply_env_defaults
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task


def test_defaults_use_one_gpu_and_vllms_own_values() -> None:
    config = parse_vllm_section(None)
    assert config == VLLMEngineConfig()
    assert config.tensor_parallel_size == 1
    assert config.gpu_memory_utilization is None and config.enforce_eager is None
    assert not config.lora_enabled


def test_full_section_round_trips() -> None:
    section = {
        "gpu_memory_utilization": 0.5,
        "tensor_parallel_size": 2,
        "max_num_seqs": 8,
        "enforce_eager": True,
        "enable_prefix_caching": False,
        "quantization": "fp8",
        "max_model_len": 1024,
        "kv_cache_space": 2,
        "lora_modules": [{"name": "sql", "path": "/adapters/sql", "base_model_name": "base"}],
        "max_lora_rank": 16,
        "seed": 7,
        "engine_args": {"generation_config": "vllm"},
    }
    config = parse_vllm_section(section)
    assert config.model_dump(exclude_unset=True)["lora_modules"][0]["name"] == "sql"
    assert config.lora_enabled and config.engine_args == {"generation_config": "vllm"}


def test_unknown_key_names_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as error:
        parse_vllm_section({"gpu_mem": 0.5}, "chat")
    message = str(error.value)
    assert "model chat" in message and "vllm.gpu_mem: unknown key" in message
    assert "gpu_memory_utilization" in message and "kv_cache_space" in message
    assert set(ALLOWED_KEYS) >= {"tensor_parallel_size", "lora_modules", "swap_space", "seed"}


def test_unknown_lora_module_key_lists_the_module_keys() -> None:
    with pytest.raises(ConfigError, match=r"vllm\.lora_modules\.0\.rank: unknown key; allowed: "
                       r"name, path, base_model_name"):  # fmt: skip
        parse_vllm_section({"lora_modules": [{"name": "a", "path": "/a", "rank": 8}]})


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"tensor_parallel_size": 0}, "vllm.tensor_parallel_size"),
        ({"gpu_memory_utilization": 1.5}, "vllm.gpu_memory_utilization"),
        ({"kv_cache_space": 0}, "vllm.kv_cache_space"),
        ({"lora_modules": [{"name": "a", "path": "/a"}], "enable_lora": False}, "enable_lora"),
        ({"lora_modules": [{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}]}, "unique"),
        ({"engine_args": {"seed": 1}}, "engine_args repeats"),
    ],
)
def test_invalid_values_are_config_errors(section: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        parse_vllm_section(section)


def test_section_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="vllm must be a mapping"):
        parse_vllm_section([1, 2])  # type: ignore[arg-type]


def test_section_arrives_from_the_environment_as_yaml() -> None:
    config = load_config(
        env={"HF_RUNTIME_MODEL_DIR": "/m", "HF_RUNTIME_VLLM": "{max_num_seqs: 4, seed: 3}"}
    )
    assert parse_vllm_section(config.models[0].vllm).max_num_seqs == 4


def test_env_defaults_never_override_the_user() -> None:
    env = {"VLLM_HOST_IP": "10.1.2.3", "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}
    applied = apply_env_defaults(VLLMEngineConfig(), env, cpu_build=True)
    assert env["VLLM_HOST_IP"] == "10.1.2.3" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert "VLLM_HOST_IP" not in applied
    assert env["VLLM_CPU_KVCACHE_SPACE"] == CPU_DEFAULTS["VLLM_CPU_KVCACHE_SPACE"]
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"


def test_cpu_defaults_only_on_the_cpu_build() -> None:
    env: dict[str, str] = {}
    apply_env_defaults(VLLMEngineConfig(), env, cpu_build=False)
    assert env == {"VLLM_HOST_IP": "127.0.0.1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def test_configured_kv_cache_space_wins_on_the_cpu_build() -> None:
    env = {"VLLM_CPU_KVCACHE_SPACE": "8"}
    apply_env_defaults(VLLMEngineConfig(kv_cache_space=3), env, cpu_build=True)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_importing_the_package_imports_neither_vllm_nor_torch() -> None:
    code = (
        "import sys\n"
        "import hf_runtime.backends.vllm, hf_runtime.backends.vllm.config\n"
        "import hf_runtime.backends.vllm.env, hf_runtime.backends.vllm.metrics\n"
        "import hf_runtime.backends.vllm.tasks, hf_runtime.backends.vllm.loader\n"
        "import hf_runtime.backends.selection, hf_runtime.backends.registry\n"
        "heavy = sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("task", "installed", "section", "fragment"),
    [
        (Task.token_classification, True, None, "token_classification is not available"),
        (Task.fill_mask, True, None, "fill_mask is not available on the vllm backend"),
        (Task.text_generation, False, None, "make install-vllm"),
        (Task.text_generation, True, {"lora_modules": [{"name": "a", "path": "/nowhere"}]},
         "no adapter_config.json in /nowhere"),
        (Task.text_generation, True, {"tensor_parallel": 2}, "vllm.tensor_parallel: unknown key"),
    ],
)  # fmt: skip
def test_load_checks_fail_before_any_engine_starts(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    task: Task,
    installed: bool,
    section: dict[str, object] | None,
    fragment: str,
) -> None:
    from hf_runtime.backends.vllm import loader as vllm_loader

    monkeypatch.setattr(vllm_loader, "vllm_installed", lambda: installed)
    config = ModelConfig(model_name="m", model_dir=str(tmp_path), backend="vllm", vllm=section)
    source = ResolvedSource(tmp_path, tmp_path, {"architectures": ["Whatever"]})
    with pytest.raises(ConfigError, match=fragment):
        asyncio.run(vllm_loader.load_vllm(config, source, task))
