"""The Anthropic Messages API in-process, with the official `anthropic` SDK unmodified and with
raw HTTP for bad input: every protocol app behind the Gateway (as the service mounts them), the
scripted generator behind the chat machinery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from hf_runtime.protocols.gateway import GatewaySettings
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import REPLY_LENGTH, FakeModel, ScriptedGenerator, reply_words
from tests.served_app import make_served_app

pytestmark = pytest.mark.anyio
KEY = "sk-ant-test-key"
USER = [{"role": "user", "content": "Hi"}]
GREEDY = {"temperature": 0}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator()


@pytest.fixture
def app(generator: ScriptedGenerator) -> Any:
    registry = FakeRegistry(
        [
            FakeModel("gpt", generator=generator),
            FakeModel("minilm", "text_embedding"),
            FakeModel("loading", generator=ScriptedGenerator(), ready=False),
            FakeModel("busy", generator=ScriptedGenerator(max_active=0)),
        ]
    )
    return make_served_app(registry, GatewaySettings(api_keys=(KEY,)))


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"x-api-key": KEY}
    ) as client:
        yield client


@pytest.fixture
async def sdk(app: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # The anthropic SDK runs on httpx2 (its own fork of httpx).
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    async with anthropic.AsyncAnthropic(
        base_url="http://test", api_key=KEY, http_client=http_client, max_retries=0
    ) as client:
        yield client


async def test_a_message(sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator) -> None:
    message = await sdk.messages.create(
        model="gpt",
        max_tokens=64,
        messages=USER,
        system="Be brief.",
        # This SDK version has no sampling arguments; the API still takes them.
        extra_body={"temperature": 0, "top_k": 5},
    )
    assert message.type == "message" and message.role == "assistant" and message.model == "gpt"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "".join(reply_words())
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == REPLY_LENGTH + 1
    (call,) = generator.chat_calls
    assert call["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    params = generator.requests[0].params
    assert (params.max_tokens, params.temperature, params.top_k) == (64, 0.0, 5)
    assert message.usage.input_tokens == len(generator.requests[0].prompt_token_ids)


async def test_a_final_assistant_turn_is_a_prefill_the_reply_continues(
    sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    prefill: Any = [*USER, {"role": "assistant", "content": "The answer is ("}]
    message = await sdk.messages.create(model="gpt", max_tokens=4, messages=prefill)
    counted = await sdk.messages.count_tokens(model="gpt", messages=prefill)
    for call in generator.chat_calls:
        assert call["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
        assert call["continue_final_message"] and not call["add_generation_prompt"]
    assert message.usage.input_tokens == counted.input_tokens
    await sdk.messages.create(model="gpt", max_tokens=4, messages=USER)
    assert generator.chat_calls[-1]["add_generation_prompt"]  # no prefill: a new turn


async def test_max_tokens_and_stop_sequences(sdk: anthropic.AsyncAnthropic) -> None:
    cut = await sdk.messages.create(model="gpt", max_tokens=2, messages=USER, extra_body=GREEDY)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
    stopped = await sdk.messages.create(
        model="gpt", max_tokens=64, messages=USER, extra_body=GREEDY, stop_sequences=[" gamma"]
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == " gamma"
    assert stopped.content[0].text == " alpha beta"


async def test_streamed_text_equals_the_whole_text(sdk: anthropic.AsyncAnthropic) -> None:
    whole = await sdk.messages.create(model="gpt", max_tokens=64, messages=USER, extra_body=GREEDY)
    kinds = []
    async with sdk.messages.stream(
        model="gpt", max_tokens=64, messages=USER, extra_body=GREEDY
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_message()
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert "message_delta" in kinds


async def test_forced_tool_call(
    sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Paris"}']
    message = await sdk.messages.create(
        model="gpt",
        max_tokens=64,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    structured = generator.requests[0].params.structured
    assert structured is not None and json.loads(structured.schema or "") == WEATHER["input_schema"]
    # The call and its result feed the next turn.
    follow = await sdk.messages.create(
        model="gpt",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": block.id, "content": "Sunny"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )
    assert follow.type == "message"
    history = generator.chat_calls[-1]["messages"]
    assert history[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert history[2] == {"role": "tool", "tool_call_id": block.id, "content": "Sunny"}
    assert history[3] == {"role": "user", "content": "Thanks"}


async def test_any_tool_streams_input_json(
    sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['[{"name": "get_weather", "parameters": {"city": "Oslo"}}]']
    async with sdk.messages.stream(
        model="gpt",
        max_tokens=64,
        messages=USER,
        tools=[WEATHER],
        tool_choice={"type": "any"},
    ) as stream:
        deltas = [e.delta.type async for e in stream if e.type == "content_block_delta"]
        final = await stream.get_final_message()
    assert set(deltas) == {"input_json_delta"}
    (block,) = final.content
    assert block.type == "tool_use" and block.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"


async def test_output_config_format_is_a_json_schema_constraint(
    sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Rome"}']
    schema = WEATHER["input_schema"]
    message = await sdk.messages.create(
        model="gpt",
        max_tokens=64,
        messages=USER,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert json.loads(message.content[0].text) == {"city": "Rome"}
    structured = generator.requests[0].params.structured
    assert structured is not None and structured.kind == "json_schema"
    assert json.loads(structured.schema or "") == schema


async def test_count_tokens_equals_the_prompt(
    sdk: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    counted = await sdk.messages.count_tokens(model="gpt", messages=USER, system="S")
    await sdk.messages.create(model="gpt", max_tokens=4, messages=USER, system="S")
    assert counted.input_tokens == len(generator.requests[0].prompt_token_ids)


# ---------------------------------------------------------------- errors


async def test_sdk_errors_have_anthropics_types(app: Any) -> None:
    # The anthropic SDK runs on httpx2 (its own fork of httpx).
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    bad_key = anthropic.AsyncAnthropic(
        base_url="http://test", api_key="wrong", http_client=http_client, max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await bad_key.messages.create(model="gpt", max_tokens=4, messages=USER)
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_bearer_key_is_accepted_too(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages",
        json={"model": "gpt", "max_tokens": 4, "messages": USER},
        headers={"x-api-key": "", "authorization": f"Bearer {KEY}", "anthropic-version": "x"},
    )
    assert response.status_code == 200, response.text


def assert_anthropic_error(response: httpx.Response, status: int, kind: str, contains: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}, body
    assert body["error"]["type"] == kind, body
    assert contains in body["error"]["message"], body


@pytest.mark.parametrize(
    ("fields", "contains"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "at least 1"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "system", "content": "x"}]}, "'user' or 'assistant'"),
        ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "'image'"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_use"}]}]}, "'tool_use'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "tool_use_id",
        ),
        ({"messages": [{"role": "assistant", "content": [{"type": "tool_use"}]}]}, "id and"),
        ({"system": [{"type": "image"}]}, "only text blocks"),
        ({"temperature": 1.5}, "between 0 and 1"),
        ({"top_k": -1}, "non-negative"),
        ({"top_p": 0}, "top_p"),
        ({"stop_sequences": [""]}, "non-empty"),
        ({"tools": [{"name": "f"}]}, "input_schema"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
        ({"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}, "name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool"}}, "needs the tool's name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "nope"),
        ({"tools": [WEATHER], "tool_choice": {"type": "sometimes"}}, "sometimes"),
        ({"tool_choice": {"type": "any"}}, "only allowed when tools"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"mcp_servers": [{"url": "x"}]}, "mcp_servers"),
        ({"container": "c"}, "container"),
        ({"output_config": {"effort": "high"}}, "effort"),
        ({"output_config": {"format": {"type": "xml"}}}, "json_schema"),
        ({"output_config": {"format": {"type": "json_schema", "schema": 3}}}, "schema"),
        ({"max_tokens": 10_000}, "maximum context length"),
    ],
)
async def test_bad_input_is_400_invalid_request_error(
    http: httpx.AsyncClient, generator: ScriptedGenerator, fields: dict[str, Any], contains: str
) -> None:
    body = {"model": "gpt", "max_tokens": 16, "messages": USER, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    response = await http.post("/v1/messages", json=body)
    assert_anthropic_error(response, 400, "invalid_request_error", contains)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "kind"),
    [
        ("/v1/messages", {"model": "nope", "max_tokens": 4, "messages": USER}, {}, 404,
         "not_found_error"),
        ("/v1/messages/count_tokens", {"model": "nope", "messages": USER}, {}, 404,
         "not_found_error"),
        ("/v1/messages", {"model": "gpt", "max_tokens": 4, "messages": USER},
         {"x-api-key": "bad"}, 401, "authentication_error"),
        ("/v1/messages", {"model": "loading", "max_tokens": 4, "messages": USER}, {}, 503,
         "overloaded_error"),
        ("/v1/messages", {"model": "busy", "max_tokens": 4, "messages": USER}, {}, 429,
         "overloaded_error"),
        ("/v1/messages", {"model": "minilm", "max_tokens": 4, "messages": USER}, {}, 400,
         "invalid_request_error"),
        ("/v1/messages/nothing", {}, {}, 404, "not_found_error"),
    ],
)  # fmt: skip
async def test_error_statuses_in_anthropics_shape(
    http: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    kind: str,
) -> None:
    response = await http.post(path, json=body, headers=headers)
    assert_anthropic_error(response, status, kind, "")


async def test_bodies_that_are_not_json_are_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert_anthropic_error(response, 400, "invalid_request_error", "JSON")


def test_messages_paths_are_the_anthropic_surface() -> None:
    from hf_runtime.protocols.gateway import Surface, surface_for

    for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/messages/x"):
        assert surface_for(path) is Surface.ANTHROPIC
    assert surface_for("/v1/messagesx") is Surface.OPENAI
    assert Surface.ANTHROPIC.is_protocol and Surface.ANTHROPIC.value == "anthropic"
