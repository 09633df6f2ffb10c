"""Served models are composed from a backend's parts the same way on every backend: encoder
models over any EncoderBackend, generative models (and their LoRA adapters) over any engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.backends import (
    EncoderParts,
    Encoding,
    ForwardItem,
    ForwardSpec,
    GenerationParts,
    LoRAAdapter,
)
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.errors import ConfigError
from hf_runtime.model import Predictor, TextGenerator
from hf_runtime.runtime import loading
from hf_runtime.runtime.loading import LoadedModel, compose
from hf_runtime.runtime.registry import Registry
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationDelta, GenerationRequest

CLOSED: list[str] = []


class FakeEngine:
    """A GenerationEngine; `for_adapter` views share it, report nothing and close nothing."""

    max_model_len = 64
    is_encoder_decoder = False
    input_vocab_size = 100

    def __init__(self, name: str = "base", owner: bool = True) -> None:
        self.name, self.owner, self.ready = name, owner, True

    def for_adapter(self, name: str) -> FakeEngine:
        return FakeEngine(name, owner=False)

    def stats(self) -> dict[str, int]:
        return {"running": 1} if self.owner else {}

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        yield GenerationDelta(text="x", token_ids=[1], finish_reason="length")

    async def aclose(self) -> None:
        CLOSED.append(self.name)
        if self.owner:
            self.ready = False


class FakeEncoder:
    """An EncoderBackend with no mask token, so a fill_mask processor refuses it."""

    padding_side = "right"
    max_length = hidden_size = vocab_size = num_labels = 8
    mask_token = mask_token_id = None

    def __init__(self) -> None:
        self.ready = True

    def tokenize(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        add_special_tokens: bool | None = None,
        truncation_side: str = "right",
        max_length: int | None = None,
    ) -> list[Encoding]:
        return [Encoding(input_ids=(1, 2)) for _ in texts]

    def encode_ids(self, token_ids: Sequence[Sequence[int]]) -> list[Encoding]:
        return [Encoding(input_ids=tuple(ids)) for ids in token_ids]

    def decode(self, token_ids: Sequence[int]) -> str:
        return ""

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[Any]:
        return [np.array([0.0, 1.0], dtype=np.float32) for _ in items]

    async def aclose(self) -> None:
        self.ready = False


def config(name: str = "m") -> ModelConfig:
    return ModelConfig(model_name=name, model_dir="/m")


def source(tmp_path: Path) -> ResolvedSource:
    return ResolvedSource(tmp_path, tmp_path, {})


async def test_generative_model_and_its_adapters_share_one_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    parts = GenerationParts(
        "fake", engine, tokenizer=None, adapters=(LoRAAdapter("sql", engine.for_adapter("sql")),)
    )
    loaded = await compose(config(), source(tmp_path), Task.text_generation, parts)
    base, (adapter,) = loaded.model, loaded.adapters
    assert base.adapters == loaded.adapters
    assert (base.name, base.backend, adapter.name, adapter.backend) == ("m", "fake", "sql", "fake")
    assert base.capability(TextGenerator) is base and adapter.ready
    assert (base.stats(), adapter.stats()) == ({"running": 1}, {})  # counted once
    CLOSED.clear()
    await base.aclose()
    assert CLOSED == ["sql", "base"] and not base.ready and not adapter.ready


async def test_encoder_model_over_any_backend(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    parts = EncoderParts("fake", encoder)
    loaded = await compose(config(), source(tmp_path), Task.sequence_classification, parts)
    model = loaded.model
    assert loaded.adapters == () and model.metadata().platform == "fake"
    assert (await model.capability(Predictor).predict(["a"])).predictions == [1]
    encoder.ready = False  # e.g. vLLM's engine died
    assert not model.ready
    await model.aclose()


async def test_a_processor_that_refuses_the_backend_closes_it(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    with pytest.raises(ConfigError, match="mask token"):
        await compose(config(), source(tmp_path), Task.fill_mask, EncoderParts("fake", encoder))
    assert not encoder.ready


async def test_adapters_are_served_under_their_own_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def load(model_config: ModelConfig) -> LoadedModel:
        engine = FakeEngine()
        adapters = tuple(LoRAAdapter(name, engine.for_adapter(name)) for name in adapter_names)
        parts = GenerationParts("fake", engine, tokenizer=None, adapters=adapters)
        return await compose(model_config, source(tmp_path), Task.text_generation, parts)

    monkeypatch.setattr(loading, "load_model", load)
    env = {"HF_RUNTIME_MODEL_DIR": "/m", "HF_RUNTIME_MODEL_NAME": "a"}
    adapter_names = ["sql"]
    registry = Registry.from_config(load_config(args={"config": "/dev/null"}, env=env))
    await registry.load_all()
    assert registry.names() == ["a", "sql"] and registry.ready
    assert registry.get("sql").backend == "fake"

    adapter_names = ["a"]  # clashes with the model itself
    registry = Registry.from_config(load_config(args={"config": "/dev/null"}, env=env))
    with pytest.raises(ConfigError, match="adapter name a clashes with a served model"):
        await registry.load_all()
