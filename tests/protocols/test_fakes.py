"""The shared fakes keep their promises: protocol conformance and deterministic generation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hf_runtime.errors import InvalidInput, ModelNotFound, ModelNotReady, Unsupported
from hf_runtime.model import (
    Embedder,
    Predictor,
    ServedModel,
    TextGenerator,
    require_capability,
)
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams
from tests.fakes import EOS_ID, FakeRegistry, FakeServedModel, FakeTextGenerator


def generate(generator: FakeTextGenerator, prompt: str, **params: Any) -> list[GenerationDelta]:
    async def collect() -> list[GenerationDelta]:
        ids = await generator.tokenize(prompt)
        request = GenerationRequest("r", ids, SamplingParams(**params))
        return [delta async for delta in generator.generate(request)]

    return asyncio.run(collect())


def test_fakes_satisfy_the_model_protocols() -> None:
    assert isinstance(FakeServedModel(), ServedModel)
    registry = FakeRegistry([FakeServedModel("a"), FakeServedModel("b", ready=False)])
    assert registry.names() == ["a", "b"] and not registry.ready
    with pytest.raises(ModelNotFound):
        registry.get("c")
    with pytest.raises(ModelNotReady):
        registry.get("b").metadata()


def test_generative_fake_has_a_generator_and_no_predictor() -> None:
    model = FakeServedModel("gpt", "text_generation")
    assert model.capability(TextGenerator) is not None
    assert model.capability(Predictor) is None and model.capability(Embedder) is None
    with pytest.raises(Unsupported, match="does not support KServe V1/V2 inference"):
        require_capability(model, Predictor)


def test_embed_truncates_and_renormalises() -> None:
    model = FakeServedModel("e", "text_embedding")
    result = asyncio.run(model.embed(["ab", [1, 2, 3]], dimensions=3))
    assert [len(v) for v in result.embeddings] == [3, 3]
    assert all(abs(sum(x * x for x in v) - 1) < 1e-9 for v in result.embeddings)
    assert result.prompt_tokens == 2 + 2 + 3 + 2
    with pytest.raises(InvalidInput):
        asyncio.run(model.embed(["a"], dimensions=99))


def test_generation_replies_then_stops_on_eos() -> None:
    deltas = generate(FakeTextGenerator("Hi there"), "q")
    assert "".join(d.text for d in deltas) == "Hi there"
    assert deltas[0].prompt_tokens == 2 and all(d.prompt_tokens == 0 for d in deltas[1:])
    assert deltas[-1].finish_reason == "stop" and deltas[-1].token_ids == [EOS_ID]
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_generation_max_tokens_is_length() -> None:
    deltas = generate(FakeTextGenerator("Hi there"), "q", max_tokens=3)
    assert "".join(d.text for d in deltas) == "Hi "
    assert deltas[-1].finish_reason == "length" and len(deltas) == 3


def test_generation_stop_string_is_trimmed_and_never_leaks() -> None:
    deltas = generate(FakeTextGenerator("abcXYdef"), "q", stop=["XYd", "zz"])
    assert [d.text for d in deltas] == ["a", "b", "c", "", "", ""]
    assert (deltas[-1].finish_reason, deltas[-1].stop_reason) == ("stop", "XYd")


def test_generation_stop_token_and_min_tokens_and_logprobs() -> None:
    deltas = generate(FakeTextGenerator("ab"), "q", stop_token_ids=[ord("b")])
    assert (deltas[-1].text, deltas[-1].stop_reason) == ("", ord("b"))
    deltas = generate(FakeTextGenerator("ab"), "q", min_tokens=4, max_tokens=10)
    assert "".join(d.text for d in deltas) == "abab"
    deltas = generate(FakeTextGenerator("ab"), "q", logprobs=2)
    assert deltas[0].logprobs is not None and len(deltas[0].logprobs[0].top) == 2


def test_generation_seed_changes_sampled_output_reproducibly() -> None:
    gen = FakeTextGenerator("abcdef")
    first = "".join(d.text for d in generate(gen, "q", temperature=1.0, seed=2))
    again = "".join(d.text for d in generate(gen, "q", temperature=1.0, seed=2))
    assert first == again == "cdefab"
    assert "".join(d.text for d in generate(gen, "q", temperature=0.0, seed=2)) == "abcdef"


def test_render_chat() -> None:
    gen = FakeTextGenerator()
    ids = asyncio.run(gen.render_chat([{"role": "user", "content": "hi"}]))
    assert (
        asyncio.run(gen.detokenize(ids))
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    template = "{% for m in messages %}[{{ m.content }}]{% endfor %}"
    ids = asyncio.run(gen.render_chat([{"role": "user", "content": "x"}], chat_template=template))
    assert asyncio.run(gen.detokenize(ids)) == "[x]"
    with pytest.raises(InvalidInput):
        asyncio.run(gen.render_chat([{"role": "user"}]))
    with pytest.raises(InvalidInput):
        asyncio.run(gen.render_chat([], chat_template="{% for %}"))
