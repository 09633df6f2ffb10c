"""The official `openai` SDK against the in-process app (what real clients will do)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import openai
import pytest
from starlette.applications import Starlette

from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import (
    REPLY_LENGTH,
    FakeModel,
    ScriptedGenerator,
    fake_embedding,
    reply_words,
    token_logprob,
)

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def sdk(root_app: Starlette) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=root_app))
    async with openai.AsyncOpenAI(
        base_url="http://test/v1", api_key="x", http_client=http, max_retries=0
    ) as client:
        yield client


async def test_completion(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.completions.create(model="gpt", prompt="Hi", temperature=0)
    assert completion.choices[0].text == "".join(reply_words())
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == REPLY_LENGTH + 1


async def test_completion_n2_stop_and_logprobs(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.completions.create(
        model="gpt", prompt="Hi", n=2, seed=3, temperature=1, stop=["zeta"], logprobs=2
    )
    assert [c.index for c in completion.choices] == [0, 1]
    for choice in completion.choices:
        assert "zeta" not in choice.text
        assert choice.logprobs is not None and choice.logprobs.tokens
        assert choice.logprobs.token_logprobs[0] == token_logprob(0)


async def test_chat(sdk: openai.AsyncOpenAI) -> None:
    chat = await sdk.chat.completions.create(
        model="gpt", messages=USER, temperature=0, max_completion_tokens=2, logprobs=True,
        top_logprobs=1,
    )  # fmt: skip
    choice = chat.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == " alpha beta"
    assert choice.finish_reason == "length"
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [t.token for t in choice.logprobs.content] == [" alpha", " beta"]
    assert choice.logprobs.content[0].top_logprobs[0].logprob == token_logprob(0)


async def test_chat_stream_with_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt",
        messages=USER,
        temperature=0,
        stream=True,
        n=2,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: ""}
    finish: dict[int, str | None] = {}
    usage = None
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert texts == {0: "".join(reply_words()), 1: "".join(reply_words())}
    assert finish == {0: "stop", 1: "stop"}
    assert usage is not None and usage.completion_tokens == 2 * (REPLY_LENGTH + 1)


async def test_embeddings_float_and_base64(sdk: openai.AsyncOpenAI) -> None:
    floats = await sdk.embeddings.create(model="minilm", input=["ab"], encoding_format="float")
    assert floats.data[0].embedding == fake_embedding([97, 98])
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = await sdk.embeddings.create(model="minilm", input=["ab", "c"])
    assert len(decoded.data) == 2
    np.testing.assert_allclose(decoded.data[0].embedding, fake_embedding([97, 98]), rtol=1e-6)
    assert decoded.usage.prompt_tokens == 7


async def test_models(sdk: openai.AsyncOpenAI) -> None:
    page = await sdk.models.list()
    assert [m.id for m in page.data] == ["gpt", "minilm", "clf", "loading"]
    assert (await sdk.models.retrieve("gpt")).id == "gpt"


async def test_errors(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="nope", messages=USER)
    assert missing.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.completions.create(model="gpt", prompt="Hi", temperature=5)
    assert bad.value.status_code == 400
    assert isinstance(bad.value.body, dict) and bad.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        await sdk.embeddings.create(model="gpt", input="x")
    with pytest.raises(openai.InternalServerError) as loading:
        await sdk.chat.completions.create(model="loading", messages=USER)
    assert loading.value.status_code == 503


async def test_error_mid_stream_raises(sdk: openai.AsyncOpenAI, fake_models: FakeRegistry) -> None:
    fake_models.models["gpt"] = FakeModel("gpt", generator=ScriptedGenerator(fail_after=1))
    stream = await sdk.chat.completions.create(model="gpt", messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="Internal server error: RuntimeError"):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 2  # the role chunk and one token arrived before the failure
