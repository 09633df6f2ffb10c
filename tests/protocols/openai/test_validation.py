"""Every bad request field: 400 in OpenAI's shape, `param` naming the field, nothing generated."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.protocols.openai.fakes import ScriptedGenerator
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Hi"}]

SAMPLING_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"temperature": -0.1}, "temperature", "between 0 and 2"),
    ({"temperature": 2.5}, "temperature", "between 0 and 2"),
    ({"temperature": "hot"}, "temperature", ""),
    ({"top_p": 0}, "top_p", "(0, 1]"),
    ({"top_p": 1.5}, "top_p", "(0, 1]"),
    ({"n": 0}, "n", "between 1 and 16"),
    ({"n": 17}, "n", "between 1 and 16"),
    ({"presence_penalty": 2.5}, "presence_penalty", "between -2 and 2"),
    ({"frequency_penalty": -3}, "frequency_penalty", "between -2 and 2"),
    ({"logit_bias": {"abc": 1}}, "logit_bias", "token ids"),
    ({"logit_bias": {"-5": 1}}, "logit_bias", "token ids"),
    ({"logit_bias": {"5": 101}}, "logit_bias", "between -100 and 100"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"stop": ""}, "stop", "non-empty"),
    ({"stop": 5}, "stop", ""),
    ({"seed": 2**64}, "seed", "64-bit"),
    ({"seed": "x"}, "seed", ""),
    ({"stream_options": {"include_usage": True}}, "stream_options", "stream is true"),
    ({"top_k": -2}, "top_k", "top_k"),
    ({"min_p": 1.5}, "min_p", "between 0 and 1"),
    ({"repetition_penalty": 0}, "repetition_penalty", "greater than 0"),
    ({"stop_token_ids": [-1]}, "stop_token_ids", "non-negative"),
    ({"min_tokens": -1}, "min_tokens", "non-negative"),
    ({"min_tokens": 5, "max_tokens": 2}, "min_tokens", "must not exceed"),
    ({"max_tokens": 0}, "max_tokens", "at least 1"),
]

COMPLETION_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"logprobs": -1}, "logprobs", "between 0 and 20"),
    ({"logprobs": 21}, "logprobs", "between 0 and 20"),
    ({"suffix": "tail"}, "suffix", "not supported"),
    ({"best_of": 3}, "best_of", "best_of"),
    ({"prompt": None}, "prompt", "required"),
    ({"prompt": []}, "prompt", "empty"),
    ({"prompt": [[]]}, "prompt", "empty"),
    ({"prompt": [-1, 3]}, "prompt", "non-negative"),
    ({"prompt": [1, "a"]}, "prompt", ""),
    ({"prompt": [1.5]}, "prompt", ""),
    ({"prompt": ["a"] * 257}, "prompt", "at most 256"),
]

CHAT_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"messages": []}, "messages", "must not be empty"),
    ({"messages": None}, "messages", ""),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages", "'wizard'"),
    ({"messages": [{"content": "x"}]}, "messages", ""),
    ({"messages": [{"role": "user", "content": 5}]}, "messages", ""),
    ({"messages": [{"role": "user", "content": None}]}, "messages", "content is required"),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "http://x"}},
                    ],
                }
            ]
        },
        "messages",
        "messages[0].content[1]: content part type 'image_url' is not supported",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages", "text is"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs", "requires logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "between 0 and 20"),
    ({"max_completion_tokens": 0}, "max_completion_tokens", "at least 1"),
    (
        {"add_generation_prompt": True, "continue_final_message": True},
        "continue_final_message",
        "cannot both be true",
    ),
    ({"response_format": {"type": "xml"}}, "response_format", "'json_schema'"),
    ({"tool_choice": "required"}, "tool_choice", "only allowed when tools"),
]


async def _assert_rejected(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    path: str,
    body: dict[str, Any],
    param: str,
    contains: str,
) -> None:
    response = await client.post(path, json=body)
    assert_error(response, 400, param, contains)
    assert generator.requests == []


@pytest.mark.parametrize(("fields", "param", "contains"), SAMPLING_CASES + COMPLETION_CASES)
async def test_completions_rejects(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    fields: dict[str, Any],
    param: str,
    contains: str,
) -> None:
    body = {"model": "gpt", "prompt": "Hi", **fields}
    await _assert_rejected(client, generator, "/v1/completions", body, param, contains)


@pytest.mark.parametrize(("fields", "param", "contains"), SAMPLING_CASES + CHAT_CASES)
async def test_chat_rejects(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    fields: dict[str, Any],
    param: str,
    contains: str,
) -> None:
    body = {"model": "gpt", "messages": USER, **fields}
    await _assert_rejected(client, generator, "/v1/chat/completions", body, param, contains)


@pytest.mark.parametrize(
    ("fields", "param", "contains"),
    [
        ({"input": ""}, "input", "must not be empty"),
        ({"input": []}, "input", "must not be empty"),
        ({"input": [[]]}, "input", "must not be empty"),
        ({"input": ["a", ""]}, "input", "must not be empty"),
        ({"input": [-3]}, "input", "non-negative"),
        ({"input": None}, "input", ""),
        ({"input": ["a"] * 2049}, "input", "at most 2048"),
        ({"encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
        ({"dimensions": 0}, "dimensions", "at least 1"),
    ],
)
async def test_embeddings_rejects(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str, contains: str
) -> None:
    body = {"model": "minilm", "input": "Hi", **fields}
    assert_error(await client.post("/v1/embeddings", json=body), 400, param, contains)


async def test_malformed_json_is_a_400_without_detail(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        content=b'{"model": "gpt", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "JSON" in error["message"] and error["type"] == "BadRequestError"


async def test_body_must_be_an_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/completions", json=["not", "an", "object"])
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
