"""The checkpoint's generation_config.json sampling defaults (vLLM's `--generation-config auto`)
on the huggingface backend: read and checked at load, applied to the request fields a client
leaves unset through the OpenAI routes, never over the ones it sets; "none" ignores them."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hf_runtime.backends.generation_defaults import checked_sampling_defaults, diff_sampling_param
from hf_runtime.backends.huggingface.loader import load_generation_parts
from hf_runtime.config import ModelConfig
from hf_runtime.runtime.generative_model import GenerativeModel
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationRequest, SamplingParams
from tests.fakes import FakeRegistry
from tests.loading import load_generative_model
from tests.served_app import make_served_app

GENERATION_CONFIG = {
    "bos_token_id": 0,
    "eos_token_id": 2,
    "do_sample": False,  # not read, as vLLM: the temperature below applies anyway
    "temperature": 0.3,
    "top_k": 5,
    "top_p": 0.9,
    "repetition_penalty": 1.1,
    "max_new_tokens": 7,
    "min_p": 3.0,  # out of range: dropped at load, with a warning
}
EXPECTED = {
    "temperature": 0.3,
    "top_k": 5,
    "top_p": 0.9,
    "repetition_penalty": 1.1,
    "max_tokens": 7,
}


@pytest.fixture(scope="module")
def checkpoint(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny gpt2-chat model, saved with sampling values in its generation_config.json."""
    out = tmp_path_factory.mktemp("gpt2-sampling")
    for item in tiny_models["gpt2-chat"].iterdir():
        shutil.copy(item, out / item.name)
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG))
    return out


def config_for(folder: Path, **overrides: Any) -> ModelConfig:
    return ModelConfig(model_name="gen", model_dir=str(folder), **overrides)


def source_for(folder: Path) -> ResolvedSource:
    return ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))


def load(folder: Path, **overrides: Any) -> GenerativeModel:
    config = config_for(folder, **overrides)
    return asyncio.run(load_generative_model(config, source_for(folder), Task.text_generation))


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> Iterator[GenerativeModel]:
    loaded = load(checkpoint)
    yield loaded
    asyncio.run(loaded.aclose())


class Spy:
    """Records the requests the engine receives (after the model applied its defaults)."""

    def __init__(self, model: GenerativeModel) -> None:
        self.requests: list[GenerationRequest] = []
        self._generate = model.engine.generate
        model.engine.generate = self.generate  # type: ignore[method-assign]

    def generate(self, request: GenerationRequest) -> Any:
        self.requests.append(request)
        return self._generate(request)


@pytest.fixture
async def served(model: GenerativeModel) -> AsyncIterator[tuple[httpx.AsyncClient, Spy]]:
    spy = Spy(model)
    app = make_served_app(FakeRegistry([model]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, spy
    finally:
        del model.engine.generate  # the engine's own method again


def test_loaded_and_checked(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hf_runtime"):
        parts = load_generation_parts(
            config_for(checkpoint), source_for(checkpoint), Task.text_generation
        )
    asyncio.run(parts.engine.aclose())
    assert dict(parts.sampling_defaults) == EXPECTED
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sampling defaults from generation_config.json" in m for m in messages) == 1
    assert any("min_p=3.0 is not a usable default" in m for m in messages)


def sampled(params: SamplingParams) -> dict[str, Any]:
    return {
        "temperature": params.temperature,
        "top_k": params.top_k,
        "top_p": params.top_p,
        "repetition_penalty": params.repetition_penalty,
        "max_tokens": params.max_tokens,
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": "Hello world"}),
        ("/openai/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}]}),
    ],
)
async def test_unset_fields_get_the_models_defaults(
    served: tuple[httpx.AsyncClient, Spy], path: str, body: dict[str, Any]
) -> None:
    client, spy = served
    response = await client.post(path, json={"model": "gen", **body, "ignore_eos": True})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 7  # max_new_tokens
    assert sampled(spy.requests[-1].params) == EXPECTED
    own = {
        "temperature": 0.0,
        "top_k": -1,
        "top_p": 0.5,
        "repetition_penalty": 1.0,
        "max_tokens": 3,
    }
    response = await client.post(path, json={"model": "gen", **body, **own, "ignore_eos": True})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 3
    assert sampled(spy.requests[-1].params) == {**own, "top_k": 0}


async def test_default_max_tokens_fits_the_room_left(
    served: tuple[httpx.AsyncClient, Spy], model: GenerativeModel
) -> None:
    """A default never turns a request that fits into an error (vLLM's get_max_tokens)."""
    client, spy = served
    prompt = [5] * (model.max_model_len - 3)
    response = await client.post("/v1/completions", json={"model": "gen", "prompt": prompt})
    assert response.status_code == 200, response.text
    assert spy.requests[-1].params.max_tokens == 3
    above = {"model": "gen", "prompt": "Hi", "min_tokens": 9, "ignore_eos": True}
    response = await client.post("/v1/completions", json=above)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 9  # min_tokens beats the default


def test_generate_applies_the_default_max_tokens_for_every_protocol(model: GenerativeModel) -> None:
    async def count(**params: Any) -> int:
        request = GenerationRequest("r", [5, 6], SamplingParams(ignore_eos=True, **params))
        return sum([len(delta.token_ids) async for delta in model.generate(request)])

    assert asyncio.run(count()) == 7
    assert asyncio.run(count(max_tokens=2)) == 2


@pytest.mark.parametrize("mode", ["none", "vllm"])
def test_none_ignores_them(checkpoint: Path, mode: str) -> None:
    model = load(checkpoint, generation={"generation_config": mode})
    try:
        assert model.sampling_defaults == {}

        async def params() -> SamplingParams:
            spy = Spy(model)
            app = make_served_app(FakeRegistry([model]))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                body = {"model": "gen", "prompt": "Hi", "max_tokens": 2}
                assert (await http.post("/v1/completions", json=body)).status_code == 200
            return spy.requests[-1].params

        got = asyncio.run(params())
        assert (got.temperature, got.top_k, got.top_p, got.repetition_penalty) == (1.0, 0, 1.0, 1.0)
    finally:
        asyncio.run(model.aclose())


def test_without_a_file_the_model_config_decides(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    for item in tiny_models["gpt2-chat"].iterdir():
        if item.name != "generation_config.json":
            shutil.copy(item, tmp_path / item.name)
    parts = load_generation_parts(config_for(tmp_path), source_for(tmp_path), Task.text_generation)
    asyncio.run(parts.engine.aclose())
    assert dict(parts.sampling_defaults) == {}


def test_diff_sampling_param_is_vllms_selection() -> None:
    diff = {"max_new_tokens": 9, "temperature": 0.6, "bos_token_id": 1, "top_k": None,
            "presence_penalty": 0.2, "max_length": 50, "do_sample": True}  # fmt: skip
    assert diff_sampling_param(diff) == {
        "max_tokens": 9,
        "temperature": 0.6,
        "presence_penalty": 0.2,
    }
    assert diff_sampling_param({"eos_token_id": 2}) == {}


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ({"temperature": 0}, {"temperature": 0.0}),
        ({"temperature": -1}, {}),
        ({"top_p": 0}, {}),
        ({"top_p": 1}, {"top_p": 1.0}),
        ({"top_k": -1}, {"top_k": 0}),
        ({"top_k": 4.0}, {"top_k": 4}),
        ({"top_k": 2.5}, {}),
        ({"min_p": 1.5}, {}),
        ({"presence_penalty": 3}, {}),
        ({"frequency_penalty": -2}, {"frequency_penalty": -2.0}),
        ({"repetition_penalty": 0}, {}),
        ({"max_tokens": 0}, {}),
        ({"max_tokens": 16}, {"max_tokens": 16}),
        ({"temperature": True}, {}),
        ({"temperature": "0.5"}, {}),
        ({"temperature": float("nan")}, {}),
        ({"typical_p": 0.5}, {}),
    ],
)
def test_unusable_values_are_dropped(raw: dict[str, Any], kept: dict[str, Any]) -> None:
    config = ModelConfig(model_name="m", model_dir="/m")
    assert checked_sampling_defaults(config, lambda: raw) == kept


def test_none_never_reads_the_file() -> None:
    def read() -> dict[str, Any]:
        raise AssertionError("read with generation_config: none")

    config = ModelConfig(model_name="m", model_dir="/m", generation={"generation_config": "none"})
    assert checked_sampling_defaults(config, read) == {}


# ------------------------------- the configuration's own: sampling_defaults, default_max_tokens

OVERRIDES = {"temperature": 0.2, "top_p": 0.5, "max_new_tokens": 4}  # vLLM's name for max_tokens


def served_params(model: GenerativeModel, body: dict[str, Any]) -> tuple[SamplingParams, int]:
    """What the engine got for `body` on /v1/completions, and the completion's length."""

    async def send() -> tuple[SamplingParams, int]:
        spy = Spy(model)
        app = make_served_app(FakeRegistry([model]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post("/v1/completions", json={"model": "gen", **body})
        assert response.status_code == 200, response.text
        return spy.requests[-1].params, response.json()["usage"]["completion_tokens"]

    return asyncio.run(send())


def test_merge_order_request_then_override_then_checkpoint_then_openai(
    checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generation = {"sampling_defaults": OVERRIDES, "default_max_tokens": 50}
    with caplog.at_level(logging.INFO, logger="hf_runtime"):
        model = load(checkpoint, generation=generation)
    try:
        # Override > checkpoint (temperature, top_p, max_tokens 4 over 7; default_max_tokens
        # 50 only where nothing else sets one); checkpoint > OpenAI (top_k, repetition_penalty).
        merged = {"temperature": 0.2, "top_k": 5, "top_p": 0.5, "repetition_penalty": 1.1,
                  "max_tokens": 4}  # fmt: skip
        assert model.sampling_defaults == merged
        params, length = served_params(model, {"prompt": "Hi", "ignore_eos": True})
        assert sampled(params) == merged and length == 4
        assert (params.min_p, params.presence_penalty) == (0.0, 0.0)  # OpenAI's: none set them
        own = {"temperature": 0.0, "top_k": 2, "top_p": 1.0, "repetition_penalty": 1.0,
               "max_tokens": 2}  # fmt: skip
        params, length = served_params(model, {"prompt": "Hi", "ignore_eos": True, **own})
        assert sampled(params) == own and length == 2  # the request wins over every default
    finally:
        asyncio.run(model.aclose())
    (line,) = [r.getMessage() for r in caplog.records if "sampling defaults from" in r.getMessage()]
    assert line == (
        "model gen: sampling defaults from generation_config.json: repetition_penalty=1.1, "
        "top_k=5; from generation.sampling_defaults: max_tokens=4, temperature=0.2, top_p=0.5 "
        "(for request fields left unset)"
    )


def test_default_max_tokens_below_the_checkpoints_length(checkpoint: Path) -> None:
    """generation.default_max_tokens stands in for "the rest of the context": the checkpoint's
    max_new_tokens (and sampling_defaults.max_tokens) are the model's own, and win."""
    model = load(checkpoint, generation={"default_max_tokens": 50})
    try:
        assert model.sampling_defaults["max_tokens"] == 7
    finally:
        asyncio.run(model.aclose())


def test_default_max_tokens_and_overrides_apply_without_the_checkpoints(checkpoint: Path) -> None:
    """generation_config: none drops the file's values; the configured ones still apply (as
    vLLM applies --override-generation-config over --generation-config vllm)."""
    generation = {"generation_config": "none", "sampling_defaults": {"temperature": 0.2},
                  "default_max_tokens": 6}  # fmt: skip
    model = load(checkpoint, generation=generation)
    try:
        assert model.sampling_defaults == {"temperature": 0.2, "max_tokens": 6}
        params, length = served_params(model, {"prompt": "Hi", "ignore_eos": True})
        assert (params.temperature, params.top_k, params.max_tokens, length) == (0.2, 0, 6, 6)
        # Still capped by the room the prompt leaves: a prompt that fits is never refused.
        prompt = [5] * (model.max_model_len - 2)
        params, length = served_params(model, {"prompt": prompt, "ignore_eos": True})
        assert (params.max_tokens, length) == (2, 2)
    finally:
        asyncio.run(model.aclose())
