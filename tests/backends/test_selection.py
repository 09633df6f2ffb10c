"""select_backend: the decision table, with vLLM's presence and registry faked (no vLLM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runtime.backends import vllm as vllm_backend
from hf_runtime.backends.selection import select_backend
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

VLLM_ARCHS = frozenset({"LlamaForCausalLM", "GPT2LMHeadModel", "BertModel"})


def source(*architectures: str) -> ResolvedSource:
    return ResolvedSource(Path("/m"), Path("/m"), {"architectures": list(architectures)})


def config(backend: str = "auto") -> ModelConfig:
    return ModelConfig(model_name="m", model_dir="/m", backend=backend)


@pytest.fixture
def vllm_present(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """vLLM 'installed' (find_spec finds it) with VLLM_ARCHS; records registry lookups."""
    lookups: list[str] = []

    def registry() -> frozenset[str]:
        lookups.append("registry")
        return VLLM_ARCHS

    monkeypatch.setattr(vllm_backend, "vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_backend, "vllm_supported_architectures", registry)
    return lookups


@pytest.fixture
def vllm_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    def registry() -> frozenset[str]:
        raise AssertionError("the registry must not be consulted without vLLM")

    monkeypatch.setattr(vllm_backend, "vllm_installed", lambda: False)
    monkeypatch.setattr(vllm_backend, "vllm_supported_architectures", registry)


@pytest.mark.parametrize(
    ("backend", "architectures", "task", "expected", "reason"),
    [
        ("auto", ["LlamaForCausalLM"], Task.text_generation, "vllm", "implements"),
        ("auto", ["MambaForCausalLM"], Task.text_generation, "huggingface", "does not implement"),
        ("auto", ["LlamaForCausalLM", "Odd"], Task.text_generation, "huggingface", "Odd"),
        ("auto", [], Task.text_generation, "huggingface", "names no architecture"),
        ("auto", ["BertModel"], Task.text_embedding, "huggingface", "encoder task"),
        ("huggingface", ["LlamaForCausalLM"], Task.text_generation, "huggingface", "configured"),
        ("vllm", ["LlamaForCausalLM"], Task.text_generation, "vllm", "configured"),
        ("vllm", ["BertModel"], Task.text_embedding, "vllm", "configured"),
    ],
)
def test_with_vllm_installed(
    vllm_present: list[str],
    backend: str,
    architectures: list[str],
    task: Task,
    expected: str,
    reason: str,
) -> None:
    chosen, why = select_backend(config(backend), source(*architectures), task)
    assert chosen == expected
    assert reason in why


def test_auto_encoder_tasks_never_consult_the_registry(vllm_present: list[str]) -> None:
    for task in (Task.text_embedding, Task.sequence_classification, Task.fill_mask):
        assert select_backend(config(), source("BertModel"), task)[0] == "huggingface"
    assert vllm_present == []


@pytest.mark.parametrize("task", list(Task))
def test_without_vllm_auto_is_huggingface(vllm_absent: None, task: Task) -> None:
    chosen, why = select_backend(config(), source("LlamaForCausalLM"), task)
    assert chosen == "huggingface"
    assert ("not installed" in why) if task.is_generative else ("encoder task" in why)


def test_explicit_vllm_without_vllm_is_a_config_error_with_the_hint(vllm_absent: None) -> None:
    with pytest.raises(ConfigError, match="make install-vllm"):
        select_backend(config("vllm"), source("LlamaForCausalLM"), Task.text_generation)


def test_explicit_vllm_on_an_unknown_architecture_is_a_config_error(
    vllm_present: list[str],
) -> None:
    with pytest.raises(ConfigError, match="vLLM does not implement T5ForConditionalGeneration"):
        select_backend(
            config("vllm"), source("T5ForConditionalGeneration"), Task.text2text_generation
        )


def test_explicit_huggingface_needs_nothing(vllm_absent: None) -> None:
    assert select_backend(config("huggingface"), source(), Task.text_generation)[0] == "huggingface"


@pytest.mark.parametrize(
    ("spec", "installed"), [(object(), True), (None, False), (ValueError("no spec"), False)]
)
def test_vllm_installed_asks_find_spec_without_importing(
    monkeypatch: pytest.MonkeyPatch, spec: object, installed: bool
) -> None:
    asked: list[str] = []

    def find_spec(name: str) -> object:
        asked.append(name)
        if isinstance(spec, Exception):
            raise spec
        return spec

    monkeypatch.setattr(vllm_backend.importlib.util, "find_spec", find_spec)
    result = vllm_backend.vllm_installed()
    monkeypatch.undo()
    assert (result, asked) == (installed, ["vllm"])


def test_sparse_embedding_stays_on_huggingface_and_vllm_refuses_it(
    vllm_present: list[str],
) -> None:
    """auto keeps a SPLADE model on huggingface (which serves every sparse surface); vLLM,
    configured, refuses it saying why."""
    chosen, _ = select_backend(config(), source("BertForMaskedLM"), Task.sparse_embedding)
    assert chosen == "huggingface"
    with pytest.raises(ConfigError, match="sparse_embedding is not available on the vllm.*"):
        select_backend(config("vllm"), source("BertForMaskedLM"), Task.sparse_embedding)
