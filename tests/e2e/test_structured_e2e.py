"""Structured outputs and tool calls with the official `openai` SDK against a real
`bentoml serve` of the default SmolLM2 configuration (configs/default.yaml: the tool-aware
ChatML template and the hermes parser), on each backend.

response_format json_schema and forced tool calls rely on the engines' constrained decoding
(hf_runtime/decoding/grammar.py); tool_choice "auto" relies on the model: a few-shot history
whose assistant turns hold <tool_call> blocks makes greedy SmolLM2-135M write one.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


CITY = {
    "type": "object",
    "properties": {
        "city": {"enum": ["Paris", "London", "Rome", "Tokyo"]},
        "population_millions": {"type": "integer", "minimum": 0, "maximum": 40},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "population_millions", "is_capital"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "The current time in a timezone"},
    },
]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


@pytest.fixture(scope="module")
def client(smollm2_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smollm2_url}/v1", api_key="unused", max_retries=0)


def create(client: openai.OpenAI, **fields: Any) -> Any:
    return client.chat.completions.create(model="smollm2", temperature=0, **fields)


def streamed_calls(client: openai.OpenAI, **fields: Any) -> tuple[list[tuple[str, str]], str]:
    """A stream's tool calls put together from their deltas, and its finish_reason."""
    calls: dict[int, dict[str, str]] = {}
    finish = ""
    for chunk in create(client, stream=True, **fields):
        for choice in chunk.choices:
            for part in choice.delta.tool_calls or []:
                call = calls.setdefault(part.index, {"name": "", "arguments": ""})
                if part.function and part.function.name:
                    assert not call["name"] and part.id  # the name comes once, with the id
                    call["name"] = part.function.name
                if part.function and part.function.arguments:
                    call["arguments"] += part.function.arguments
            finish = choice.finish_reason or finish
    return [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)], finish


def test_json_schema_reply_follows_the_schema(client: openai.OpenAI) -> None:
    reply = create(
        client,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },
        max_tokens=80,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    jsonschema.validate(json.loads(choice.message.content or ""), CITY)


def test_json_object_reply_is_an_object(client: openai.OpenAI) -> None:
    reply = create(
        client,
        messages=[{"role": "user", "content": "Give me a JSON object about Rome."}],
        response_format={"type": "json_object"},
        max_tokens=120,
    )
    choice = reply.choices[0]
    if choice.finish_reason == "stop":  # cut by max_tokens, it could not be whole
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:
        assert (choice.message.content or "").lstrip().startswith("{")


def test_a_named_tool_call_follows_its_parameters(client: openai.OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    reply = create(client, messages=ASK_WEATHER, tools=TOOLS, tool_choice=named, max_tokens=60)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"  # OpenAI's for a named function
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    # The same request streamed assembles to the same call.
    calls, finish = streamed_calls(
        client, messages=ASK_WEATHER, tools=TOOLS, tool_choice=named, max_tokens=60
    )
    assert calls == [("get_weather", call.function.arguments)]
    assert finish == "stop"


def test_required_tool_calls_follow_their_tools(client: openai.OpenAI) -> None:
    reply = create(
        client, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=120
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.tool_calls
    schemas = {"get_weather": WEATHER, "get_time": {"type": "object"}}
    for call in choice.message.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    calls, finish = streamed_calls(
        client, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=120
    )
    whole = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls]
    assert (calls, finish) == (whole, "tool_calls")


def few_shot(city: str) -> list[dict[str, Any]]:
    """Two questions answered with <tool_call> blocks (the template renders them), then a
    third: greedy SmolLM2 follows the pattern."""

    def call(i: int, where: str) -> dict[str, Any]:
        arguments = json.dumps({"city": where})
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        }

    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        call(1, "Paris"),
        {"role": "user", "content": "What is the weather in Tokyo?"},
        call(2, "Tokyo"),
        {"role": "user", "content": f"What is the weather in {city}?"},
    ]


AUTO_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_auto_reads_the_models_own_hermes_call(client: openai.OpenAI) -> None:
    fields = {"messages": few_shot("London"), "tools": AUTO_TOOLS, "max_tokens": 60}
    reply = create(client, tool_choice="auto", **fields)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "London"}
    assert not choice.message.content  # nothing but the call
    # tool_choice omitted with tools means "auto" too; streamed, the same call.
    calls, finish = streamed_calls(client, **fields)
    assert (calls, finish) == ([("get_weather", call.function.arguments)], "tool_calls")


def test_a_tool_result_goes_back_through_the_template(client: openai.OpenAI) -> None:
    messages = [
        *few_shot("London")[:2],
        {"role": "tool", "tool_call_id": "call_1", "content": "22 C and sunny"},
    ]
    reply = create(client, messages=messages, tools=AUTO_TOOLS, max_tokens=30)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_bad_tool_choice_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(
            client,
            messages=ASK_WEATHER,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_news"}},
        )
    assert info.value.body is not None and info.value.body["param"] == "tool_choice"  # type: ignore[index]
