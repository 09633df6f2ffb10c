"""The model's generation_config.json sampling defaults in the OpenAI layer: a field the request
leaves unset takes the model's value (else OpenAI's), one it sets keeps its own (vLLM's order)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hf_runtime.protocols.openai.request_params import sampling_params
from hf_runtime.protocols.openai.schemas import CompletionRequest
from hf_runtime.types import SamplingParams
from tests.protocols.openai.fakes import ScriptedGenerator

pytestmark = pytest.mark.anyio

MODEL_DEFAULTS: dict[str, float | int] = {
    "temperature": 0.3,
    "top_p": 0.8,
    "top_k": 5,
    "min_p": 0.05,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "repetition_penalty": 1.1,
    "max_tokens": 7,  # the model applies this one (it knows the prompt's length)
}
SAMPLED = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
           "repetition_penalty")  # fmt: skip
REQUEST_VALUES: dict[str, Any] = {
    "temperature": 0.9,
    "top_p": 0.5,
    "top_k": 2,
    "min_p": 0.2,
    "presence_penalty": 1.0,
    "frequency_penalty": 1.5,
    "repetition_penalty": 1.3,
}


def params_for(defaults: dict[str, float | int] | None, **fields: Any) -> SamplingParams:
    request = CompletionRequest(model="m", prompt="hi", **fields)
    return sampling_params(request, max_tokens=request.max_tokens, logprobs=None, defaults=defaults)


def test_unset_fields_take_the_models_defaults() -> None:
    params = params_for(MODEL_DEFAULTS)
    assert {name: getattr(params, name) for name in SAMPLED} == {
        name: MODEL_DEFAULTS[name] for name in SAMPLED
    }
    assert params.max_tokens is None  # left to the model: capped by the room the prompt leaves


def test_set_fields_keep_their_own_values() -> None:
    params = params_for(MODEL_DEFAULTS, max_tokens=3, **REQUEST_VALUES)
    assert {name: getattr(params, name) for name in SAMPLED} == REQUEST_VALUES
    assert params.max_tokens == 3
    # Explicitly off stays off, and greedy stays greedy.
    assert params_for(MODEL_DEFAULTS, top_k=-1).top_k == 0
    assert params_for(MODEL_DEFAULTS, top_k=0).top_k == 0
    assert params_for(MODEL_DEFAULTS, temperature=0).temperature == 0.0


def test_without_defaults_openais_apply() -> None:
    openai = SamplingParams()
    for defaults in (None, {}):
        params = params_for(defaults)
        assert {name: getattr(params, name) for name in SAMPLED} == {
            name: getattr(openai, name) for name in SAMPLED
        }
    only_temperature = params_for({"temperature": 0.3})
    assert (only_temperature.temperature, only_temperature.top_p) == (0.3, 1.0)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": "Hi"}),
        ("/openai/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
    ],
)
async def test_routes_apply_the_generators_defaults(
    client: httpx.AsyncClient, generator: ScriptedGenerator, path: str, body: dict[str, Any]
) -> None:
    generator.sampling_defaults = dict(MODEL_DEFAULTS)
    unset = await client.post(path, json={"model": "gpt", **body, "max_tokens": 4})
    assert unset.status_code == 200, unset.text
    params = generator.requests[-1].params
    assert {name: getattr(params, name) for name in SAMPLED} == {
        name: MODEL_DEFAULTS[name] for name in SAMPLED
    }
    own = await client.post(path, json={"model": "gpt", **body, "max_tokens": 4, **REQUEST_VALUES})
    assert own.status_code == 200, own.text
    params = generator.requests[-1].params
    assert {name: getattr(params, name) for name in SAMPLED} == REQUEST_VALUES
    generator.sampling_defaults = {}
    await client.post(path, json={"model": "gpt", **body, "max_tokens": 4})
    assert generator.requests[-1].params.temperature == 1.0  # OpenAI's default again
