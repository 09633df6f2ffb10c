"""The official `openai` SDK against a real `bentoml serve` (SmolLM2 chat, MiniLM embeddings)."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


def test_models_listing_works_for_openai_clients(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"minilm", "smollm2"} <= ids
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_chat_answers_paris(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_tokens=24
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 10


def test_streaming_chat_equals_non_streaming(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_tokens=16
    )
    stream = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_tokens=16, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_completions_n2_stop_and_logprobs(client: openai.OpenAI) -> None:
    result = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0.8,
        n=2, seed=7, logprobs=2,
    )  # fmt: skip
    assert [c.index for c in result.choices] == [0, 1]
    for choice in result.choices:
        assert choice.logprobs is not None and choice.logprobs.tokens
        # the 2 most likely tokens, plus the sampled one when it is not among them (as vLLM)
        assert all(2 <= len(top) <= 3 for top in choice.logprobs.top_logprobs or [])
    greedy = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=12, temperature=0
    )
    text = greedy.choices[0].text
    word = text.split()[1] if len(text.split()) > 1 else text.strip()
    stopped = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=12, temperature=0,
        stop=[word],
    )  # fmt: skip
    assert word not in stopped.choices[0].text
    assert stopped.choices[0].finish_reason == "stop"


def test_embeddings_float_and_base64_equal_v1(client: openai.OpenAI, server_url: str) -> None:
    sentence = "This is an example sentence."
    as_float = client.embeddings.create(model="minilm", input=sentence).data[0].embedding
    # Asked for explicitly, base64 comes back as text: little-endian float32 bytes.
    encoded = (
        client.embeddings.create(model="minilm", input=[sentence], encoding_format="base64")
        .data[0]
        .embedding
    )
    assert isinstance(encoded, str)
    as_b64 = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    v1 = httpx.post(
        f"{server_url}/v1/models/minilm:predict", json={"instances": [sentence]}
    ).json()["predictions"][0]
    np.testing.assert_allclose(as_float, v1, atol=1e-6)
    np.testing.assert_allclose(as_b64, v1, atol=1e-6)


def test_errors_have_the_right_sdk_types(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=QUESTION)
    assert missing.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=5)
    assert bad.value.status_code == 400
    with pytest.raises(openai.BadRequestError) as wrong_task:
        client.completions.create(model="minilm", prompt="hi")
    assert "embeddings" in str(wrong_task.value)


def test_openai_prefix_like_kserve(server_url: str) -> None:
    response = httpx.post(
        f"{server_url}/openai/v1/completions",
        json={"model": "smollm2", "prompt": "Hello", "max_tokens": 2, "temperature": 0},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "text_completion"


def test_tokenize_round_trips_and_counts_the_chat_prompt(
    client: openai.OpenAI, server_url: str
) -> None:
    text = "The capital of France is Paris."
    for prefix in ("", "/v1", "/openai/v1"):
        tokens = httpx.post(
            f"{server_url}{prefix}/tokenize", json={"model": "smollm2", "prompt": text}
        ).json()
        assert tokens["count"] == len(tokens["tokens"]) and tokens["max_model_len"] == 8192
        back = httpx.post(
            f"{server_url}{prefix}/detokenize",
            json={"model": "smollm2", "tokens": tokens["tokens"]},
        )
        assert back.status_code == 200 and back.json() == {"prompt": text}
    # The chat's ids are exactly the prompt /chat/completions generates from.
    chat = httpx.post(
        f"{server_url}/tokenize", json={"model": "smollm2", "messages": QUESTION}
    ).json()
    reply = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=1, temperature=0
    )
    assert reply.usage is not None and reply.usage.prompt_tokens == chat["count"]
    minilm = httpx.post(
        f"{server_url}/v1/tokenize",
        json={"model": "minilm", "prompt": "Hello world", "return_token_strs": True},
    ).json()
    assert minilm["token_strs"] == ["[CLS]", "hello", "world", "[SEP]"]
    bad = httpx.post(f"{server_url}/detokenize", json={"model": "minilm", "tokens": [-1]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
