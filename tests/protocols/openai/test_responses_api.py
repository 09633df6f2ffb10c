"""OpenAI's Responses API in-process with the official `openai` SDK unmodified (and raw HTTP
for bad input), over the scripted generator: text, streaming events, function tools, text
formats, the store (previous_response_id, GET, DELETE, store false, bounds) and every refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

from hf_runtime.protocols.openai.responses_api.store import ResponseStore
from tests.protocols.openai.fakes import REPLY_LENGTH, ScriptedGenerator, reply_words
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def sdk(root_app: Starlette) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=root_app))
    async with openai.AsyncOpenAI(
        base_url="http://test/v1", api_key="x", http_client=http, max_retries=0
    ) as client:
        yield client


async def test_text_response(sdk: openai.AsyncOpenAI, generator: ScriptedGenerator) -> None:
    response = await sdk.responses.create(
        model="gpt", input="Hi", instructions="Be brief.", temperature=0,
        metadata={"k": "v"}, user="u1",
    )  # fmt: skip
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "".join(reply_words())
    assert response.output[0].type == "message"
    assert response.usage is not None and response.usage.output_tokens == REPLY_LENGTH + 1
    assert response.usage.input_tokens == len(generator.requests[0].prompt_token_ids)
    assert response.metadata == {"k": "v"} and response.user == "u1"
    assert generator.chat_calls[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


async def test_max_output_tokens_is_incomplete(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="gpt", input="Hi", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


async def test_stream_events_and_text(sdk: openai.AsyncOpenAI) -> None:
    whole = await sdk.responses.create(model="gpt", input="Hi", temperature=0)
    stream = await sdk.responses.create(model="gpt", input="Hi", temperature=0, stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text == events[-1].response.output_text


async def test_stream_helper_final_response(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="gpt", input="Hi", temperature=0) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == "".join(reply_words())


async def test_forced_function_call_and_its_output_feed_the_next_turn(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Paris"}']
    response = await sdk.responses.create(
        model="gpt", input="Weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )  # fmt: skip
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    generator.scripts = None
    follow = await sdk.responses.create(
        model="gpt",
        tools=[WEATHER],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name,
             "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
        ],
    )  # fmt: skip
    assert follow.status == "completed"
    history = generator.chat_calls[-1]["messages"]
    assert history[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert history[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny"}


async def test_streamed_function_call(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['[{"name": "get_weather", "parameters": {"city": "Oslo"}}]']
    stream = await sdk.responses.create(
        model="gpt", input="x", tools=[WEATHER], tool_choice="required", stream=True,  # type: ignore[list-item]
    )  # fmt: skip
    events = [e async for e in stream]
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert json.loads(arguments) == {"city": "Oslo"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done[0].arguments == arguments
    final = events[-1].response
    assert final.output[0].type == "function_call" and final.output[0].arguments == arguments


async def test_json_schema_text_format(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Rome"}']
    response = await sdk.responses.create(
        model="gpt",
        input="x",
        text={"format": {"type": "json_schema", "name": "place", "strict": True,
                         "schema": WEATHER["parameters"]}},
    )  # fmt: skip
    assert json.loads(response.output_text) == {"city": "Rome"}
    structured = generator.requests[0].params.structured
    assert structured is not None and structured.kind == "json_schema"


async def test_previous_response_id_get_and_delete(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    first = await sdk.responses.create(model="gpt", input="Hi", instructions="Sys")
    second = await sdk.responses.create(model="gpt", input="More", previous_response_id=first.id)
    history = generator.chat_calls[-1]["messages"]
    assert history == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "More"},
    ]  # instructions are not carried over, as OpenAI does
    assert second.previous_response_id == first.id
    fetched = await sdk.responses.retrieve(first.id)
    assert fetched.id == first.id and fetched.output_text == first.output_text
    await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model="gpt", input="x", previous_response_id=first.id)


async def test_store_false_keeps_nothing(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="gpt", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(response.id)


async def test_streamed_responses_are_stored(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model="gpt", input="Hi", stream=True)
    events = [e async for e in stream]
    fetched = await sdk.responses.retrieve(events[-1].response.id)
    assert fetched.output_text == events[-1].response.output_text


def test_store_bounds() -> None:
    def body(i: int) -> dict[str, Any]:
        return {"id": f"r{i}", "x": "y" * 100}

    store = ResponseStore(max_entries=3, max_bytes=10_000, max_age_s=3600)
    for i in range(5):
        store.put(body(i), [])
    assert len(store) == 3 and store.get("r0") is None and store.get("r4") is not None
    small = ResponseStore(max_entries=100, max_bytes=500, max_age_s=3600)
    for i in range(10):
        small.put(body(i), [])
    assert small.bytes <= 500 and small.get("r9") is not None and small.get("r0") is None
    small.put({"id": "huge", "x": "y" * 1000}, [])
    assert small.get("huge") is None  # larger than the whole bound: not kept
    aged = ResponseStore(max_entries=10, max_bytes=10_000, max_age_s=0)
    aged.put(body(1), [])
    assert aged.get("r1") is None and len(aged) == 0


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("fields", "param", "contains"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools", "web_search"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools", "file_search"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools", "computer_use_preview"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools", "code_interpreter"),
        ({"tools": [WEATHER], "tool_choice": {"type": "web_search"}}, "tool_choice", "web_search"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "x"}}, "tool_choice",
         "'x'"),
        ({"input": []}, "input", "must not be empty"),
        ({"input": [{"type": "input_image"}]}, "input", "input_image"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input",
         "input_file"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input", "role"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input", "call_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input", "output"),
        ({"max_output_tokens": 0}, "max_output_tokens", "at least 1"),
        ({"temperature": 3}, "temperature", "between 0 and 2"),
        ({"text": {"format": {"type": "xml"}}}, "response_format", "xml"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "response_format", "name"),
        ({"reasoning": {"effort": "high"}}, "reasoning", "reasoning"),
        ({"background": True}, "background", "not supported"),
        ({"truncation": "auto"}, "truncation", "not supported"),
        ({"include": ["message.output_text.logprobs"]}, "include", "not supported"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", "16"),
        ({"background_options": {"completion_window": "2h"}}, "background_options",
         "not supported"),
        ({"conversation": "conv_1"}, "conversation", "not supported"),
        ({"context_management": [{"type": "compaction"}]}, "context_management",
         "not supported"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt", "not supported"),
        ({"max_tool_calls": 2}, "max_tool_calls", "not supported"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation", "not supported"),
        ({"image": {"context_compression": "enabled"}}, "image", "not supported"),
        ({"access_programs": {"cyber": "daybreak_red"}}, "access_programs", "not supported"),
        ({"top_logprobs": 5}, "top_logprobs", "not supported"),
        ({"include": ["reasoning.encrypted_content"]}, "include", "reasoning.encrypted"),
        ({"prompt_cache_options": {"prewarm": True}}, "prompt_cache_options", "prewarm"),
        ({"text": {"verbosity": "low"}}, "text", "verbosity"),
        ({"stop": 5}, "stop", ""),
        ({"top_k": -5}, "top_k", ""),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": [{"x": 1}]}]},
         "input", "output"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input", "item_reference"),
        ({"previous_response_id": "resp_nope"}, "previous_response_id", "not found"),
    ],
)  # fmt: skip
async def test_bad_input_is_4xx_naming_the_field(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    fields: dict[str, Any],
    param: str,
    contains: str,
) -> None:
    body = {"model": "gpt", "input": "Hi", **fields}
    response = await client.post("/v1/responses", json=body)
    status = 404 if param == "previous_response_id" else 400
    assert_error(response, status, param, contains)
    assert generator.requests == []


async def test_unknown_ids_are_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/openai/v1/responses/resp_missing")
        assert_error(response, 404, None, "not found")
