"""GenerativeModel: loading, the ServedModel surface, tokenizing and chat templates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError, InvalidInput, Unsupported
from hf_runtime.model import Embedder, Predictor, ServedModel, TextGenerator, require_capability
from hf_runtime.runtime.generative_model import GenerativeModel
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationRequest, SamplingParams
from tests.loading import load_generative_model

MESSAGES = [{"role": "user", "content": "Hello"}]


def load(folder: Path, task: Task, **config: Any) -> GenerativeModel:
    model_config = ModelConfig(model_name="gen", model_dir=str(folder), **config)
    source = ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))
    return asyncio.run(load_generative_model(model_config, source, task))


@pytest.fixture(scope="module")
def gpt2(tiny_models: dict[str, Path]) -> Iterator[GenerativeModel]:
    model = load(tiny_models["gpt2-chat"], Task.text_generation)
    yield model
    asyncio.run(model.aclose())


@pytest.fixture(scope="module")
def t5(tiny_models: dict[str, Path]) -> Iterator[GenerativeModel]:
    model = load(tiny_models["t5"], Task.text2text_generation)
    yield model
    asyncio.run(model.aclose())


async def complete(model: GenerativeModel, prompt: list[int], **params: Any) -> str:
    request = GenerationRequest("r", prompt, SamplingParams(**params))
    return "".join([d.text async for d in model.generate(request)])


def test_served_model_surface(gpt2: GenerativeModel, tiny_models: dict[str, Path]) -> None:
    assert isinstance(gpt2, ServedModel)
    assert (gpt2.name, gpt2.task, gpt2.ready) == ("gen", "text_generation", True)
    assert gpt2.capability(TextGenerator) is gpt2
    assert not gpt2.is_encoder_decoder
    n_positions = json.loads((tiny_models["gpt2-chat"] / "config.json").read_text())["n_positions"]
    assert gpt2.max_model_len == n_positions
    meta = gpt2.metadata()
    assert (meta.name, meta.task, meta.inputs, meta.outputs) == ("gen", "text_generation", [], [])
    assert gpt2.engine.model.dtype.is_floating_point
    assert gpt2._tokenizer.padding_side == "left"


def test_seq2seq_surface(t5: GenerativeModel) -> None:
    assert t5.task == "text2text_generation"
    assert t5.is_encoder_decoder
    assert t5.engine.batch_kind == "PaddedDecodeBatch"


def test_encoder_capabilities_are_absent(gpt2: GenerativeModel) -> None:
    # Decided once at load: the OpenAI layer turns the absence into a 400 naming its routes.
    assert gpt2.capability(Predictor) is None and gpt2.capability(Embedder) is None
    with pytest.raises(Unsupported, match="does not support embeddings"):
        require_capability(gpt2, Embedder)


def test_max_model_len_from_config_is_used(tiny_models: dict[str, Path]) -> None:
    model = load(tiny_models["gpt2-chat"], Task.text_generation, max_model_len=16)
    try:
        assert model.max_model_len == 16
        with pytest.raises(InvalidInput) as info:
            asyncio.run(complete(model, [1] * 10, max_tokens=10))
        assert info.value.param == "max_tokens"
    finally:
        asyncio.run(model.aclose())


def test_max_model_len_above_the_model_limit_is_a_config_error(
    tiny_models: dict[str, Path],
) -> None:
    with pytest.raises(ConfigError, match="max_model_len"):
        load(tiny_models["gpt2-chat"], Task.text_generation, max_model_len=10**6)


def test_tokenize_and_detokenize_round_trip(gpt2: GenerativeModel) -> None:
    ids = asyncio.run(gpt2.tokenize("Hello world"))
    assert ids == gpt2._tokenizer.encode("Hello world")
    assert asyncio.run(gpt2.detokenize(ids)) == "Hello world"


def test_detokenize_rejects_unknown_ids(gpt2: GenerativeModel) -> None:
    with pytest.raises(InvalidInput):
        asyncio.run(gpt2.detokenize([10**7]))


def test_render_chat_uses_the_tokenizer_template(gpt2: GenerativeModel) -> None:
    ids = asyncio.run(gpt2.render_chat(MESSAGES))
    text = asyncio.run(gpt2.detokenize(ids))
    assert text == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    without_prompt = asyncio.run(gpt2.render_chat(MESSAGES, add_generation_prompt=False))
    assert asyncio.run(gpt2.detokenize(without_prompt)) == "<|im_start|>user\nHello<|im_end|>\n"


def test_text_parts_are_joined_with_newlines(gpt2: GenerativeModel) -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    parts = [{"role": "user", "content": content}]
    ids = asyncio.run(gpt2.render_chat(parts))
    assert "a\nb" in asyncio.run(gpt2.detokenize(ids))


def test_non_text_parts_are_rejected(gpt2: GenerativeModel) -> None:
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(InvalidInput) as info:
        asyncio.run(gpt2.render_chat(image))
    assert info.value.param == "messages" and "image_url" in info.value.message


def test_request_template_is_refused_unless_allowed(gpt2: GenerativeModel) -> None:
    with pytest.raises(InvalidInput) as info:
        asyncio.run(gpt2.render_chat(MESSAGES, chat_template="{{ 'x' }}"))
    assert info.value.param == "chat_template"
    assert "allow_request_chat_template" in info.value.message


def test_allowed_request_template_errors_are_client_errors(tiny_models: dict[str, Path]) -> None:
    model = load(
        tiny_models["gpt2-chat"], Task.text_generation,
        generation={"allow_request_chat_template": True},
    )  # fmt: skip
    try:
        template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
        ids = asyncio.run(model.render_chat(MESSAGES, chat_template=template))
        assert asyncio.run(model.detokenize(ids)) == "[Hello]"
        kwargs_template = "{{ greeting }}{{ messages[0]['content'] }}"
        ids = asyncio.run(
            model.render_chat(
                MESSAGES, chat_template=kwargs_template, chat_template_kwargs={"greeting": "Hi "}
            )
        )
        assert asyncio.run(model.detokenize(ids)) == "Hi Hello"
        with pytest.raises(InvalidInput) as syntax:
            asyncio.run(model.render_chat(MESSAGES, chat_template="{% for %}"))
        assert syntax.value.param == "chat_template"
        with pytest.raises(InvalidInput) as raised:
            asyncio.run(model.render_chat(MESSAGES, chat_template="{{ raise_exception('no') }}"))
        assert raised.value.param == "messages"
    finally:
        asyncio.run(model.aclose())


def test_configured_template_file_wins_over_the_tokenizer(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    model = load(
        tiny_models["gpt2-chat"], Task.text_generation,
        generation={"chat_template": str(template)},
    )  # fmt: skip
    try:
        ids = asyncio.run(model.render_chat(MESSAGES))
        assert asyncio.run(model.detokenize(ids)) == "<user>Hello"
    finally:
        asyncio.run(model.aclose())


def test_missing_template_file_is_a_config_error(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="generation.chat_template"):
        load(
            tiny_models["gpt2-chat"], Task.text_generation,
            generation={"chat_template": "/nonexistent/chat.jinja"},
        )  # fmt: skip


def test_no_template_anywhere_is_a_clear_client_error(t5: GenerativeModel) -> None:
    with pytest.raises(InvalidInput) as info:
        asyncio.run(t5.render_chat(MESSAGES))
    assert info.value.param == "messages"
    assert "no chat template" in info.value.message


def test_generation_runs_through_the_model(gpt2: GenerativeModel, t5: GenerativeModel) -> None:
    for model in (gpt2, t5):
        prompt = asyncio.run(model.tokenize("Hello world"))
        first = asyncio.run(complete(model, prompt, max_tokens=8, temperature=0))
        assert first == asyncio.run(complete(model, prompt, max_tokens=8, temperature=0))


def test_close_makes_the_model_not_ready(tiny_models: dict[str, Path]) -> None:
    model = load(tiny_models["gpt2-chat"], Task.text_generation)
    asyncio.run(model.aclose())
    assert not model.ready


def test_an_encoder_task_is_refused(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError):
        load(tiny_models["gpt2-chat"], Task.fill_mask)


@pytest.mark.slow
def test_smollm2_chat_answers_paris(smollm2_dir: Path) -> None:
    model = load(smollm2_dir, Task.text_generation)
    try:
        assert model.max_model_len == 8192
        prompt = asyncio.run(
            model.render_chat([{"role": "user", "content": "What is the capital of France?"}])
        )
        answer = asyncio.run(complete(model, prompt, max_tokens=20, temperature=0))
        assert "Paris" in answer
    finally:
        asyncio.run(model.aclose())
