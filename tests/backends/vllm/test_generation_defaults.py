"""The vllm backend's generation_config.json sampling defaults: vLLM's own
`ModelConfig.get_diff_sampling_param` (override_generation_config included), checked like the
huggingface backend's and handed over in GenerationParts. No engine is started: the loader's
generation step runs over a stand-in engine holding a real vLLM ModelConfig (cheap)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.backends.vllm.conftest import model_config, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]


@pytest.fixture(scope="module")
def checkpoint(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llama-sampling")
    for item in tiny_llama_dir.iterdir():
        shutil.copy(item, out / item.name)
    generation = json.loads((out / "generation_config.json").read_text())
    generation.update(temperature=0.3, top_k=5, repetition_penalty=1.1, max_new_tokens=7)
    (out / "generation_config.json").write_text(json.dumps(generation))
    return out


def parts_for(folder: Path, **overrides: Any) -> Any:
    import transformers
    from vllm.config import ModelConfig as VLLMModelConfig

    from hf_runtime.backends.vllm.config import parse_vllm_section
    from hf_runtime.backends.vllm.loader import _generation

    config = model_config(folder, **overrides)
    engine_config = parse_vllm_section(config.vllm, config.model_name)
    override = engine_config.engine_args.get("override_generation_config", {})
    vllm_model = VLLMModelConfig(
        model=str(folder), dtype="float32", override_generation_config=override
    )
    engine = SimpleNamespace(
        model_config=vllm_model,
        vllm_config=SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=2)),
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    return _generation(config, engine, tokenizer, engine_config, None)


def test_vllm_reads_the_same_defaults(checkpoint: Path) -> None:
    parts = parts_for(checkpoint)
    expected = {"temperature": 0.3, "top_k": 5, "repetition_penalty": 1.1, "max_tokens": 7}
    assert dict(parts.sampling_defaults) == expected


def test_override_generation_config_and_none(checkpoint: Path) -> None:
    section = {"enforce_eager": True, "engine_args": {"override_generation_config": {"top_p": 0.5}}}
    assert parts_for(checkpoint, vllm=section).sampling_defaults["top_p"] == 0.5
    assert (
        dict(parts_for(checkpoint, generation={"generation_config": "none"}).sampling_defaults)
        == {}
    )


def test_configured_defaults_merge_over_vllms(checkpoint: Path) -> None:
    """Request > generation.sampling_defaults > generation_config.json (and vLLM's own
    engine_args override) > default_max_tokens, as on the huggingface backend: the runtime
    applies the merged map (tests/runtime/test_generation_defaults.py) on either backend."""
    generation = {"sampling_defaults": {"temperature": 0.2, "max_new_tokens": 4, "top_p": 0.5},
                  "default_max_tokens": 50}  # fmt: skip
    section = {"enforce_eager": True, "engine_args": {"override_generation_config": {"top_p": 0.8}}}
    parts = parts_for(checkpoint, vllm=section, generation=generation)
    assert dict(parts.sampling_defaults) == {
        "temperature": 0.2, "top_k": 5, "top_p": 0.5, "repetition_penalty": 1.1, "max_tokens": 4,
    }  # fmt: skip
    below = parts_for(checkpoint, generation={"default_max_tokens": 50})
    assert below.sampling_defaults["max_tokens"] == 7  # the checkpoint's max_new_tokens wins
    none = {"generation_config": "none", "sampling_defaults": {"temperature": 0.2},
            "default_max_tokens": 6}  # fmt: skip
    assert dict(parts_for(checkpoint, generation=none).sampling_defaults) == {
        "temperature": 0.2, "max_tokens": 6,
    }  # fmt: skip
