"""/tokenize and /detokenize on the real default models (huggingface backend), in-process behind
the gateway: SmolLM2 (generative, chat template) and MiniLM (an encoder), against their own
transformers tokenizers, on the root and both OpenAI prefixes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import transformers

from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model, load_generative_model
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

pytestmark = pytest.mark.slow  # loads SmolLM2 and MiniLM

PREFIXES = ["", "/v1", "/openai/v1"]
TEXT = "Hello, world! The capital of France is Paris. Ünïcödé 🚀"
CHAT = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "What is the capital of France?"},
]


def source(folder: Path) -> ResolvedSource:
    return ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))


@pytest.fixture(scope="module")
def models(smollm2_dir: Path, minilm_dir: Path) -> Iterator[dict[str, Any]]:
    async def load() -> dict[str, Any]:
        smollm2 = await load_generative_model(
            ModelConfig(model_name="smollm2", model_dir=str(smollm2_dir)),
            source(smollm2_dir),
            Task.text_generation,
        )
        minilm = await load_encoder_model(
            ModelConfig(model_name="minilm", model_dir=str(minilm_dir)),
            source(minilm_dir),
            Task.text_embedding,
        )
        return {"smollm2": smollm2, "minilm": minilm}

    loaded = asyncio.run(load())
    yield loaded
    for model in loaded.values():
        asyncio.run(model.aclose())


@pytest.fixture(scope="module")
def tokenizers(smollm2_dir: Path, minilm_dir: Path) -> dict[str, Any]:
    return {
        "smollm2": transformers.AutoTokenizer.from_pretrained(str(smollm2_dir)),
        "minilm": transformers.AutoTokenizer.from_pretrained(str(minilm_dir)),
    }


@pytest.fixture
async def client(models: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_served_app(FakeRegistry(list(models.values())))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def post(client: httpx.AsyncClient, path: str, **body: Any) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", ["smollm2", "minilm"])
@pytest.mark.parametrize("prefix", PREFIXES)
async def test_tokenize_is_the_models_tokenizer_and_round_trips(
    client: httpx.AsyncClient,
    models: dict[str, Any],
    tokenizers: dict[str, Any],
    name: str,
    prefix: str,
) -> None:
    tokenizer = tokenizers[name]
    expected = tokenizer(TEXT)["input_ids"]
    body = await post(client, f"{prefix}/tokenize", model=name, prompt=TEXT, return_token_strs=True)
    assert body == {
        "count": len(expected),
        "max_model_len": models[name].max_model_len,
        "tokens": expected,
        "token_strs": tokenizer.convert_ids_to_tokens(expected),
    }
    back = await post(client, f"{prefix}/detokenize", model=name, tokens=expected)
    assert back == {"prompt": tokenizer.decode(expected)}
    bare = await post(
        client, f"{prefix}/tokenize", model=name, prompt=TEXT, add_special_tokens=False
    )
    assert bare["tokens"] == tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    if name == "smollm2":  # byte-level BPE: the text comes back exactly
        assert (await post(client, f"{prefix}/detokenize", model=name, tokens=bare["tokens"])) == {
            "prompt": TEXT
        }
    else:  # uncased WordPiece: lower-cased, specials kept in the text
        assert back["prompt"].startswith("[CLS] hello, world!")


async def test_limits_are_the_models(client: httpx.AsyncClient) -> None:
    smollm2 = await post(client, "/tokenize", model="smollm2", prompt="hi")
    minilm = await post(client, "/tokenize", model="minilm", prompt="hi")
    assert (smollm2["max_model_len"], minilm["max_model_len"]) == (8192, 512)
    # Never truncated, even past the encoder's limit (vLLM's /tokenize does not either).
    long = await post(client, "/tokenize", model="minilm", prompt="paris " * 600)
    assert long["count"] == 602


async def test_chat_messages_are_what_chat_completions_sends(
    client: httpx.AsyncClient, models: dict[str, Any], tokenizers: dict[str, Any]
) -> None:
    smollm2 = models["smollm2"]
    for prefix in PREFIXES:
        body = await post(client, f"{prefix}/tokenize", model="smollm2", messages=CHAT)
        assert body["tokens"] == await smollm2.render_chat(CHAT)
        as_text = tokenizers["smollm2"].apply_chat_template(
            CHAT, add_generation_prompt=True, tokenize=False
        )
        assert (await post(client, "/detokenize", model="smollm2", tokens=body["tokens"])) == {
            "prompt": as_text
        }
    no_prompt = await post(
        client, "/tokenize", model="smollm2", messages=CHAT, add_generation_prompt=False
    )
    assert no_prompt["tokens"] == await smollm2.render_chat(CHAT, add_generation_prompt=False)
    # SmolLM2's tokenizer adds no special tokens: asking for them changes nothing.
    specials = await post(
        client, "/tokenize", model="smollm2", messages=CHAT, add_special_tokens=True
    )
    assert specials["tokens"] == body["tokens"]


async def test_bad_inputs_on_real_models(client: httpx.AsyncClient, models: dict[str, Any]) -> None:
    for name, vocab in (("smollm2", models["smollm2"].engine.input_vocab_size),
                        ("minilm", models["minilm"].encoder.vocab_size)):  # fmt: skip
        for prefix in PREFIXES:
            outside = await client.post(
                f"{prefix}/detokenize", json={"model": name, "tokens": [1, vocab]}
            )
            assert_error(outside, 400, "tokens", f"token id {vocab} is outside the vocabulary")
            negative = await client.post(
                f"{prefix}/detokenize", json={"model": name, "tokens": [-5]}
            )
            assert_error(negative, 400, "tokens", "non-negative")
    chat_on_encoder = await client.post("/tokenize", json={"model": "minilm", "messages": CHAT})
    assert_error(chat_on_encoder, 400, "messages", "no chat template")
    own_template = await client.post(
        "/v1/tokenize", json={"model": "smollm2", "messages": CHAT, "chat_template": "{{ 1 }}"}
    )
    assert_error(own_template, 400, "chat_template", "disabled")
