"""Configuration sources, precedence and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hf_runtime.config import DEFAULT_CONFIG_PATH, load_config
from hf_runtime.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


TWO_MODELS = """
models:
  - model_name: a
    model_dir: /models/a
    task: fill_mask
  - model_name: b
    model_dir: /models/b
"""


def test_default_file_serves_minilm_and_smollm2() -> None:
    config = load_config(args={}, env={})
    names = [m.model_name for m in config.models]
    assert names == ["minilm", "smollm2"]
    assert config.models[0].task is not None and config.models[0].task.value == "text_embedding"
    assert DEFAULT_CONFIG_PATH.is_file()


def test_defaults_are_kserve_defaults(tmp_path: Path) -> None:
    model = load_config(args={"model_dir": "/m"}, env={}).models[0]
    assert model.model_name == "model"
    assert model.dtype == "auto" and model.backend == "auto"
    assert not model.return_probabilities and not model.trust_remote_code


def test_precedence_file_env_args(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_MODELS)
    env = {"HF_RUNTIME_CONFIG": str(path), "HF_RUNTIME_DTYPE": "bfloat16"}
    config = load_config(args={}, env=env)
    assert [m.dtype for m in config.models] == ["bfloat16", "bfloat16"]
    config = load_config(args={"dtype": "float32"}, env=env)
    assert [m.dtype for m in config.models] == ["float32", "float32"]
    # --arg config= wins over the env var
    other = tmp_path / "o.yaml"
    other.write_text("models: [{model_name: z, model_dir: /z}]")
    assert load_config(args={"config": str(other)}, env=env).models[0].model_name == "z"


def test_model_defining_flag_serves_exactly_one_model(tmp_path: Path) -> None:
    env = {"HF_RUNTIME_CONFIG": str(write(tmp_path, TWO_MODELS))}
    config = load_config(args={"model_dir": "/x", "model_name": "x"}, env=env)
    assert [m.model_name for m in config.models] == ["x"]
    config = load_config(args={}, env={**env, "HF_RUNTIME_MODEL_ID": "org/m"})
    assert [(m.model_name, m.model_id) for m in config.models] == [("model", "org/m")]


def test_env_booleans_and_lists() -> None:
    env = {
        "HF_RUNTIME_MODEL_DIR": "/m",
        "HF_RUNTIME_RETURN_PROBABILITIES": "true",
        "HF_RUNTIME_TENSOR_INPUT_NAMES": "input_ids, attention_mask",
        "HF_RUNTIME_MAX_MODEL_LEN": "128",
    }
    model = load_config(args={}, env=env).models[0]
    assert model.return_probabilities is True
    assert model.tensor_input_names == ["input_ids", "attention_mask"]
    assert model.max_model_len == 128


def test_nested_sections_from_env() -> None:
    env = {"HF_RUNTIME_MODEL_DIR": "/m", "HF_RUNTIME_BATCHING": '{"max_batch_size": 8}'}
    assert load_config(args={}, env=env).models[0].batching.max_batch_size == 8


def test_disable_postprocess_is_alias_of_return_raw_logits() -> None:
    model = load_config(args={"model_dir": "/m", "disable_postprocess": "true"}, env={}).models[0]
    assert model.return_raw_logits is True


def test_max_length_is_alias_of_max_model_len() -> None:
    model = load_config(args={"model_dir": "/m", "max_length": "64"}, env={}).models[0]
    assert model.max_model_len == 64


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"model_dir": "/m", "dtype": "fp8"}, "models.0.dtype"),
        ({"model_dir": "/m", "task": "question_answering"}, "models.0.task"),
        ({"model_dir": "/m", "backend": "onnx"}, "models.0.backend"),
        ({"model_dir": "/m", "max_model_len": "0"}, "models.0.max_model_len"),
        ({"model_dir": "/m", "return_probabilities": "maybe"}, "return_probabilities"),
        (
            {"model_dir": "/m", "return_probabilities": "1", "return_raw_logits": "1"},
            "mutually exclusive",
        ),
        ({"model_dir": "/m", "model_id": "o/m"}, "not both"),
        ({"model_dir": "/m", "model_name": "a/b"}, "model_name"),
        ({"model_dir": "/m", "nonsense": "1"}, "unknown argument(s) ['nonsense']"),
        ({"model_dir": "/m", "batching": "{max_batch: 3}"}, "batching.max_batch"),
    ],
)
def test_bad_values_name_the_key(args: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(args=args, env={})
    assert needle in str(info.value)


def test_allowed_values_are_listed() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(args={"model_dir": "/m", "dtype": "fp8"}, env={})
    assert "'bfloat16'" in str(info.value)


def test_unknown_env_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="HF_RUNTIME_RETURN_PROBS"):
        load_config(args={"model_dir": "/m"}, env={"HF_RUNTIME_RETURN_PROBS": "1"})


def test_unknown_file_keys_are_errors(tmp_path: Path) -> None:
    bad_model = write(tmp_path, "models: [{model_name: a, model_dir: /a, use_id2label: true}]")
    with pytest.raises(ConfigError, match=r"models\.0\.use_id2label: unknown key"):
        load_config(args={"config": str(bad_model)}, env={})
    bad_top = tmp_path / "t.yaml"
    bad_top.write_text("servers: []\nmodels: [{model_dir: /a}]")
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_config(args={"config": str(bad_top)}, env={})


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(args={"config": str(tmp_path / "missing.yaml")}, env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(args={"config": str(write(tmp_path, "models: [unclosed"))}, env={})
    with pytest.raises(ConfigError, match="at least 1"):
        load_config(args={"config": str(write(tmp_path, "models: []"))}, env={})
    dup = "models: [{model_name: a, model_dir: /a}, {model_name: a, model_dir: /b}]"
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(args={"config": str(write(tmp_path, dup))}, env={})
    with pytest.raises(ConfigError, match="model_id or model_dir"):
        load_config(args={"config": str(write(tmp_path, "models: [{model_name: a}]"))}, env={})


# ------------------------------------------ generation.sampling_defaults, default_max_tokens


def generation_of(tmp_path: Path, section: str, **sources: dict[str, str]) -> Any:
    path = write(tmp_path, f"models:\n  - model_dir: /m\n    generation: {section}\n")
    args = {"config": str(path), **sources.get("args", {})}
    return load_config(args=args, env=sources.get("env", {})).models[0].generation


def test_default_file_serves_smollm2_greedy_and_short() -> None:
    smollm2 = load_config(args={}, env={}).models[1].generation
    assert smollm2.sampling_defaults.values() == {"temperature": 0.0}
    assert smollm2.default_max_tokens == 256


def test_sampling_defaults_are_off_unless_configured() -> None:
    settings = load_config(args={"model_dir": "/m"}, env={}).models[0].generation
    assert settings.sampling_defaults.values() == {} and settings.default_max_tokens is None


def test_sampling_defaults_in_the_file(tmp_path: Path) -> None:
    section = (
        "{sampling_defaults: {temperature: 0, top_p: 1, top_k: -1, min_p: 0.05, "
        "presence_penalty: -2, frequency_penalty: 2, repetition_penalty: 1.1, "
        "max_new_tokens: 64}, default_max_tokens: 100}"
    )
    settings = generation_of(tmp_path, section)
    assert settings.sampling_defaults.values() == {
        "temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.05, "presence_penalty": -2.0,
        "frequency_penalty": 2.0, "repetition_penalty": 1.1, "max_tokens": 64,
    }  # fmt: skip
    assert settings.default_max_tokens == 100


def test_flat_flags_from_env_and_args_merge_over_the_file(tmp_path: Path) -> None:
    section = "{sampling_defaults: {temperature: 0.2, top_p: 0.9}, max_num_seqs: 3}"
    env = {
        "HF_RUNTIME_OVERRIDE_GENERATION_CONFIG": '{"temperature": 0.7, "max_new_tokens": 9}',
        "HF_RUNTIME_DEFAULT_MAX_TOKENS": "128",
    }
    settings = generation_of(tmp_path, section, env=env)
    assert settings.sampling_defaults.values() == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 9,
    }  # fmt: skip
    assert (settings.default_max_tokens, settings.max_num_seqs) == (128, 3)
    args = {"override_generation_config": '{"top_p": 0.5}', "default_max_tokens": "64"}
    settings = generation_of(tmp_path, section, env=env, args=args)
    assert settings.sampling_defaults.values() == {"temperature": 0.2, "top_p": 0.5}
    assert settings.default_max_tokens == 64


def test_cli_takes_vllms_override_generation_config() -> None:
    from hf_runtime.cli import serve_command

    command = serve_command(["--model_dir", "/m", "--override-generation-config",
                             '{"temperature": 0.2}', "--default-max-tokens", "32"])  # fmt: skip
    assert 'override_generation_config={"temperature": 0.2}' in command
    assert "default_max_tokens=32" in command
    with pytest.raises(ConfigError, match="sampling_defaults.temp: unknown key"):
        serve_command(["--model_dir", "/m", "--override-generation-config", '{"temp": 0.2}'])


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ("{sampling_defaults: {temp: 0.2}}", "sampling_defaults.temp: unknown key"),
        ("{sampling_defaults: {do_sample: true}}", "sampling_defaults.do_sample: unknown key"),
        ("{sampling_defaults: {temperature: -0.1}}", "sampling_defaults.temperature"),
        ("{sampling_defaults: {temperature: .inf}}", "finite"),
        ("{sampling_defaults: {temperature: .nan}}", "finite"),
        ("{sampling_defaults: {temperature: true}}", "temperature: Value error, must be a number"),
        ("{sampling_defaults: {temperature: hot}}", "sampling_defaults.temperature"),
        ("{sampling_defaults: {top_p: 0}}", "sampling_defaults.top_p"),
        ("{sampling_defaults: {top_p: 1.5}}", "sampling_defaults.top_p"),
        ("{sampling_defaults: {top_k: -2}}", "sampling_defaults.top_k"),
        ("{sampling_defaults: {top_k: 2.5}}", "sampling_defaults.top_k"),
        ("{sampling_defaults: {min_p: 1.1}}", "sampling_defaults.min_p"),
        ("{sampling_defaults: {presence_penalty: 2.5}}", "sampling_defaults.presence_penalty"),
        ("{sampling_defaults: {frequency_penalty: -3}}", "sampling_defaults.frequency_penalty"),
        ("{sampling_defaults: {repetition_penalty: 0}}", "sampling_defaults.repetition_penalty"),
        ("{sampling_defaults: {max_tokens: 0}}", "sampling_defaults.max_tokens"),
        ("{sampling_defaults: {max_tokens: 5, max_new_tokens: 6}}", "give one"),
        ("{sampling_defaults: [0.2]}", "sampling_defaults"),
        ("{default_max_tokens: 0}", "generation.default_max_tokens"),
        ("{default_max_tokens: many}", "generation.default_max_tokens"),
    ],
)
def test_bad_sampling_defaults_are_config_errors(tmp_path: Path, section: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        generation_of(tmp_path, section)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("OVERRIDE_GENERATION_CONFIG", "{not json", "expected a JSON object"),
        ("OVERRIDE_GENERATION_CONFIG", "0.2", "expected a JSON object"),
        ("OVERRIDE_GENERATION_CONFIG", '{"top_p": 2}', "sampling_defaults.top_p"),
        ("DEFAULT_MAX_TOKENS", "-1", "generation.default_max_tokens"),
    ],
)
def test_bad_flat_flags_are_config_errors(flag: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(args={"model_dir": "/m"}, env={f"HF_RUNTIME_{flag}": value})
    assert needle in str(info.value)
