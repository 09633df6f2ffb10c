"""POST /chat/completions (non-streaming) against the scripted engine."""

from __future__ import annotations

import re

import httpx
import pytest

from hf_runtime.protocols.openai.request_params import choice_seed
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import (
    REPLY_LENGTH,
    WORDS,
    FakeModel,
    ScriptedGenerator,
    reply_words,
    token_logprob,
)
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Hi"}]
PROMPT = "<user>Hi\n<assistant>"


async def chat(client: httpx.AsyncClient, **fields: object) -> dict:
    fields.setdefault("messages", USER)
    response = await client.post("/v1/chat/completions", json={"model": "gpt", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def test_chat_body_shape_and_usage(client: httpx.AsyncClient) -> None:
    body = await chat(client, temperature=0)
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", body["id"])
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt" and body["system_fingerprint"] is None
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "".join(reply_words())},
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": len(PROMPT),
        "completion_tokens": REPLY_LENGTH + 1,
        "total_tokens": len(PROMPT) + REPLY_LENGTH + 1,
    }


async def test_template_receives_messages_and_options(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "f"},
    ]
    await chat(
        client,
        messages=messages,
        tools=tools,  # tool_choice omitted and no parser configured: tools reach the template
        chat_template_kwargs={"enable_thinking": False},
    )
    call = generator.chat_calls[0]
    assert call["messages"] == [
        {"role": "system", "content": "Be brief."},  # developer is the templates' "system"
        {"role": "user", "content": "a\nb"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "f"},
    ]
    assert call["tools"] == tools
    assert call["chat_template_kwargs"] == {"enable_thinking": False}
    assert (call["add_generation_prompt"], call["continue_final_message"]) == (True, False)
    assert call["chat_template"] is None


async def test_continue_final_message(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    messages = [*USER, {"role": "assistant", "content": "Sure,"}]
    await chat(client, messages=messages, add_generation_prompt=False, continue_final_message=True)
    call = generator.chat_calls[0]
    assert (call["add_generation_prompt"], call["continue_final_message"]) == (False, True)


async def test_request_chat_template_is_refused_unless_allowed(
    client: httpx.AsyncClient, fake_models: FakeRegistry
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt", "messages": USER, "chat_template": "{{ messages }}"},
    )
    assert_error(response, 400, "chat_template", "not allowed")
    fake_models.models["gpt"] = FakeModel(
        "gpt", generator=ScriptedGenerator(allow_request_template=True)
    )
    body = await chat(client, chat_template="SYS:", temperature=0)
    assert body["usage"]["prompt_tokens"] == len("SYS:" + PROMPT)


async def test_max_completion_tokens_wins_over_max_tokens(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    body = await chat(client, max_tokens=5, max_completion_tokens=2)
    assert generator.requests[0].params.max_tokens == 2
    assert body["choices"][0]["finish_reason"] == "length"
    await chat(client, max_tokens=3)
    assert generator.requests[1].params.max_tokens == 3
    await chat(client)
    assert generator.requests[2].params.max_tokens is None


async def test_n_with_seed_gives_distinct_repeatable_choices(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    body = await chat(client, n=3, seed=5, temperature=0.7)
    texts = [c["message"]["content"] for c in body["choices"]]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert texts == ["".join(reply_words(choice_seed(5, j), 0.7)) for j in range(3)]
    assert sorted(r.params.seed for r in generator.requests) == sorted(
        choice_seed(5, j) for j in range(3)
    )
    assert body["usage"]["prompt_tokens"] == len(PROMPT)  # one prompt, counted once
    assert body["usage"]["completion_tokens"] == 3 * (REPLY_LENGTH + 1)


async def test_stop_in_chat(client: httpx.AsyncClient) -> None:
    body = await chat(client, temperature=0, stop=[" beta"])
    choice = body["choices"][0]
    assert choice["message"]["content"] == " alpha"
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", " beta")


async def test_chat_logprobs_format(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    body = await chat(client, temperature=0, max_tokens=2, logprobs=True, top_logprobs=2)
    assert generator.requests[0].params.logprobs == 2
    content = body["choices"][0]["logprobs"]["content"]
    assert [entry["token"] for entry in content] == [" alpha", " beta"]
    first = content[0]
    assert first["logprob"] == token_logprob(0)
    assert first["bytes"] == list(b" alpha")
    assert [t["token"] for t in first["top_logprobs"]] == [" alpha", WORDS[1]]
    assert first["top_logprobs"][0] == {
        "token": " alpha",
        "logprob": token_logprob(0),
        "bytes": list(b" alpha"),
    }


async def test_logprobs_without_top_logprobs(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    body = await chat(client, temperature=0, max_tokens=1, logprobs=True)
    assert generator.requests[0].params.logprobs == 0
    assert body["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == []
    await chat(client, max_tokens=1, logprobs=False)
    assert generator.requests[1].params.logprobs is None


async def test_text_response_format_is_accepted(client: httpx.AsyncClient) -> None:
    await chat(client, response_format={"type": "text"}, tool_choice="none", user="u")
