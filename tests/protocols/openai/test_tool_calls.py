"""tools and tool_choice on /chat/completions, with the scripted engine emitting given texts:
the constraint a forced choice sends the engine, `tool_calls` in whole answers and streams
(deltas assemble to the same calls), finish reasons, and a 400 for every bad input."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hf_runtime.types import StructuredOutput
from tests.protocols.openai.fakes import ScriptedGenerator
from tests.protocols.openai.helpers import assert_error, parse_sse

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": WEATHER_PARAMETERS,
            "strict": True,
        },
    },
    {"type": "function", "function": {"name": "get_time"}},
]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
HERMES = (
    "Let me check.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
)
REQUIRED_REPLY = (
    '[{"name": "get_weather", "parameters": {"city": "Paris"}}, '
    '{"name": "get_time", "parameters": {}}]'
)


async def chat(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    body = {"model": "gpt", "messages": USER, "tools": TOOLS, **fields}
    return await client.post("/v1/chat/completions", json=body)


async def whole(client: httpx.AsyncClient, **fields: Any) -> list[dict[str, Any]]:
    response = await chat(client, **fields)
    assert response.status_code == 200, response.text
    return response.json()["choices"]


async def streamed(client: httpx.AsyncClient, **fields: Any) -> list[dict[str, Any]]:
    """The stream put back together per choice, as the OpenAI SDK does; checks OpenAI's
    delta rules on the way (id, type and name on a call's first delta only)."""
    response = await chat(client, stream=True, **fields)
    assert response.status_code == 200, response.text
    choices: dict[int, dict[str, Any]] = {}
    for event in parse_sse(response.text)[:-1]:
        for choice in event["choices"]:
            out = choices.setdefault(
                choice["index"], {"content": None, "calls": {}, "finish_reason": None}
            )
            delta = choice["delta"]
            if delta.get("content"):
                out["content"] = (out["content"] or "") + delta["content"]
            for part in delta.get("tool_calls", []):
                call = out["calls"].get(part["index"])
                if call is None:
                    assert part["type"] == "function" and part["id"]
                    call = out["calls"][part["index"]] = {
                        "id": part["id"],
                        "name": part["function"]["name"],
                        "arguments": "",
                    }
                else:
                    assert "id" not in part and "name" not in part["function"]
                call["arguments"] += part["function"].get("arguments", "")
            if choice["finish_reason"] is not None:
                assert out["finish_reason"] is None
                out["finish_reason"] = choice["finish_reason"]
    return [choices[i] for i in sorted(choices)]


def calls_of(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]


def stream_calls(choice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["name"], c["arguments"]) for _, c in sorted(choice["calls"].items())]


# ---------------------------------------------------------------- forced: a named function


async def test_named_function_is_constrained_and_answered_as_a_call(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Paris"}']
    (choice,) = await whole(client, tool_choice=NAMED)
    schema = json.dumps(WEATHER_PARAMETERS, separators=(",", ":"))
    assert generator.requests[0].params.structured == StructuredOutput(
        "json_schema", schema, "tool_choice"
    )
    message = choice["message"]
    assert message["content"] is None and message["role"] == "assistant"
    assert calls_of(message) == [("get_weather", '{"city": "Paris"}')]
    call = message["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert choice["finish_reason"] == "stop"  # OpenAI and vLLM: "stop" for a named function


async def test_named_function_without_parameters_takes_any_object(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = ["{}"]
    (choice,) = await whole(
        client, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert generator.requests[0].params.structured == StructuredOutput(
        "json_schema", '{"type":"object","properties":{}}', "tool_choice"
    )
    assert calls_of(choice["message"]) == [("get_time", "{}")]


async def test_named_function_streams_the_same_call(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Paris", "days": [1, 2]}']
    (message,) = [c["message"] for c in await whole(client, tool_choice=NAMED)]
    (choice,) = await streamed(client, tool_choice=NAMED)
    assert stream_calls(choice) == calls_of(message)
    assert choice["content"] is None and choice["finish_reason"] == "stop"


# ---------------------------------------------------------------- forced: "required"


async def test_required_is_constrained_to_vllms_schema(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = [REQUIRED_REPLY]
    (choice,) = await whole(client, tool_choice="required")
    structured = generator.requests[0].params.structured
    assert structured is not None and structured.param == "tool_choice"
    schema = json.loads(structured.schema or "")
    assert schema["type"] == "array" and schema["minItems"] == 1 and "maxItems" not in schema
    variants = schema["items"]["anyOf"]
    assert [v["properties"]["name"] for v in variants] == [
        {"type": "string", "enum": ["get_weather"]},
        {"type": "string", "enum": ["get_time"]},
    ]
    assert variants[0]["properties"]["parameters"] == WEATHER_PARAMETERS
    assert variants[1]["properties"]["parameters"] == {"type": "object", "properties": {}}
    assert all(v["required"] == ["name", "parameters"] for v in variants)
    assert calls_of(choice["message"]) == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", "{}"),
    ]
    assert choice["message"]["content"] is None
    assert choice["finish_reason"] == "tool_calls"


async def test_required_streams_the_same_calls(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = [REQUIRED_REPLY]
    for chunk in (1, 2, 5):
        generator.script_chunk = chunk
        (message,) = [c["message"] for c in await whole(client, tool_choice="required")]
        (choice,) = await streamed(client, tool_choice="required")
        assert stream_calls(choice) == calls_of(message)
        assert choice["finish_reason"] == "tool_calls" and choice["content"] is None


async def test_no_parallel_calls(client: httpx.AsyncClient, generator: ScriptedGenerator) -> None:
    generator.scripts = [REQUIRED_REPLY]  # what an engine without the grammar might write
    (choice,) = await whole(client, tool_choice="required", parallel_tool_calls=False)
    structured = generator.requests[0].params.structured
    assert structured is not None and json.loads(structured.schema or "")["maxItems"] == 1
    assert calls_of(choice["message"]) == [("get_weather", '{"city": "Paris"}')]
    (choice,) = await streamed(client, tool_choice="required", parallel_tool_calls=False)
    assert stream_calls(choice) == [("get_weather", '{"city": "Paris"}')]


async def test_defs_move_to_the_top_of_the_required_schema(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    parameters = {
        "type": "object",
        "properties": {"place": {"$ref": "#/$defs/Place"}},
        "$defs": {"Place": {"type": "string"}},
    }
    tools = [{"type": "function", "function": {"name": "go", "parameters": parameters}}]
    generator.scripts = ['[{"name": "go", "parameters": {"place": "Rome"}}]']
    await whole(client, tools=tools, tool_choice="required")
    structured = generator.requests[0].params.structured
    schema = json.loads(structured.schema or "") if structured else {}
    assert schema["$defs"] == {"Place": {"type": "string"}}
    assert "$defs" not in schema["items"]["anyOf"][0]["properties"]["parameters"]
    assert "$defs" in parameters  # the request's own schema is left as it was


# ---------------------------------------------------------------- "auto": the model's parser


@pytest.mark.parametrize("tool_choice", ["auto", None])
async def test_auto_reads_the_models_own_calls(
    client: httpx.AsyncClient, generator: ScriptedGenerator, tool_choice: str | None
) -> None:
    generator.tool_call_parser = "hermes"
    generator.scripts = [HERMES]
    fields = {"tool_choice": tool_choice} if tool_choice else {}
    (choice,) = await whole(client, **fields)
    assert generator.requests[0].params.structured is None  # no grammar: the model's syntax
    assert choice["message"]["content"] == "Let me check."
    assert calls_of(choice["message"]) == [("get_weather", '{"city": "Paris"}')]
    assert choice["finish_reason"] == "tool_calls"
    (streamed_choice,) = await streamed(client, **fields)
    assert streamed_choice["content"] == "Let me check."
    assert stream_calls(streamed_choice) == calls_of(choice["message"])
    assert streamed_choice["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "text",
    ["Paris is sunny today.", "<tool_call>not a call</tool_call>", "Partial <tool_ca"],
)
async def test_auto_without_a_call_answers_content(
    client: httpx.AsyncClient, generator: ScriptedGenerator, text: str
) -> None:
    generator.tool_call_parser = "hermes"
    generator.scripts = [text]
    (choice,) = await whole(client, tool_choice="auto")
    assert choice["message"] == {"role": "assistant", "content": text}
    assert choice["finish_reason"] == "stop"
    (streamed_choice,) = await streamed(client, tool_choice="auto")
    assert streamed_choice == {"content": text, "calls": {}, "finish_reason": "stop"}


async def test_tool_choice_none_leaves_the_text_alone(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.tool_call_parser = "hermes"
    generator.scripts = [HERMES]
    (choice,) = await whole(client, tool_choice="none")
    assert choice["message"] == {"role": "assistant", "content": HERMES}
    assert generator.chat_calls[0]["tools"] == TOOLS  # still shown to the model


async def test_tools_without_a_parser_only_reach_the_template(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = [HERMES]
    (choice,) = await whole(client)  # tool_choice omitted, no parser configured
    assert choice["message"] == {"role": "assistant", "content": HERMES}
    assert generator.chat_calls[0]["tools"] == TOOLS


async def test_each_choice_is_read_on_its_own(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.tool_call_parser = "hermes"
    generator.scripts = [HERMES, "No tool needed.", HERMES.replace("Paris", "Oslo")]
    choices = await whole(client, n=3)
    assert [c["finish_reason"] for c in choices] == ["tool_calls", "stop", "tool_calls"]
    assert choices[1]["message"] == {"role": "assistant", "content": "No tool needed."}
    assert calls_of(choices[2]["message"]) == [("get_weather", '{"city": "Oslo"}')]
    streams = await streamed(client, n=3)
    assert [c["finish_reason"] for c in streams] == ["tool_calls", "stop", "tool_calls"]
    assert [stream_calls(c) for c in streams] == [
        calls_of(c["message"]) if "tool_calls" in c["message"] else [] for c in choices
    ]
    assert streams[1]["content"] == "No tool needed."


async def test_a_call_cut_by_max_tokens_finishes_with_length(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"city": "Paris"}']
    generator.script_chunk = 4
    (choice,) = await whole(client, tool_choice=NAMED, max_completion_tokens=2)
    assert calls_of(choice["message"]) == [("get_weather", '{"city":')]
    assert choice["finish_reason"] == "length"
    (streamed_choice,) = await streamed(client, tool_choice=NAMED, max_completion_tokens=2)
    assert stream_calls(streamed_choice) == [("get_weather", '{"city":')]
    assert streamed_choice["finish_reason"] == "length"


async def test_a_reply_that_is_not_the_forced_call_is_content(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    """An engine that ignored the grammar: content, never a 500."""
    generator.scripts = ["I would rather chat."]
    for tool_choice in (NAMED, "required"):
        (choice,) = await whole(client, tool_choice=tool_choice)
        assert choice["message"] == {"role": "assistant", "content": "I would rather chat."}
        assert choice["finish_reason"] == "stop"


async def test_history_with_calls_and_results_reaches_the_template(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "name": "get_weather",
            "content": [{"type": "text", "text": "22 C"}],
        },
    ]
    await whole(client, messages=messages)
    sent = generator.chat_calls[0]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert sent[1]["content"] is None
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "get_weather",
        "content": "22 C",
    }


# ---------------------------------------------------------------- bad input


def function(**fields: Any) -> dict[str, Any]:
    return {"type": "function", "function": fields}


BAD_TOOLS: list[tuple[dict[str, Any], str, str]] = [
    ({"tools": []}, "tools", "must not be an empty array"),
    ({"tools": "get_weather"}, "tools", ""),
    ({"tools": [{"type": "retrieval"}]}, "tools", "tools[0].type must be 'function'"),
    ({"tools": [{"type": "function"}]}, "tools", "tools[0].function is required"),
    ({"tools": [function(description="x")]}, "tools", "tools[0].function.name is required"),
    ({"tools": [function(name="get weather")]}, "tools", "function.name"),
    ({"tools": [function(name="f" * 65)]}, "tools", "function.name"),
    ({"tools": [function(name="f"), function(name="f")]}, "tools", "defined twice"),
    ({"tools": [function(name="f", parameters=[1])]}, "tools", "JSON Schema object"),
    (
        {"tools": [function(name="f", parameters={"type": "string"})]},
        "tools",
        "must describe an object",
    ),
    ({"tools": [function(name="f", description=3)]}, "tools", "description"),
    ({"tools": [function(name="f", strict="yes")]}, "tools", "strict"),
    ({"tool_choice": "sometimes"}, "tool_choice", "must be 'none', 'auto', 'required'"),
    ({"tool_choice": {"type": "function"}}, "tool_choice", "must look like"),
    ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice", "must look like"),
    (
        {"tool_choice": {"type": "function", "function": {"name": "get_time2"}}},
        "tool_choice",
        "'get_time2', which is not among the tools",
    ),
    ({"tool_choice": 3}, "tool_choice", ""),
    ({"tool_choice": "auto"}, "tool_choice", "generation.tool_call_parser"),
    ({"parallel_tool_calls": [1]}, "parallel_tool_calls", ""),
]


@pytest.mark.parametrize(("fields", "param", "contains"), BAD_TOOLS)
async def test_bad_tools_are_400s(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    fields: dict[str, Any],
    param: str,
    contains: str,
) -> None:
    response = await chat(client, **fields)
    assert_error(response, 400, param, contains)
    assert generator.requests == []


@pytest.mark.parametrize("tool_choice", ["auto", "required", NAMED])
async def test_tool_choice_needs_tools(
    client: httpx.AsyncClient, generator: ScriptedGenerator, tool_choice: Any
) -> None:
    response = await client.post(
        "/v1/chat/completions", json={"model": "gpt", "messages": USER, "tool_choice": tool_choice}
    )
    assert_error(response, 400, "tool_choice", "only allowed when tools are specified")
    assert generator.requests == []


async def test_an_unknown_configured_parser_is_named(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.tool_call_parser = "granite"
    response = await chat(client, tool_choice="auto")
    assert_error(response, 400, "tool_choice", "'granite'")


async def test_tools_on_an_embedding_model(client: httpx.AsyncClient) -> None:
    response = await chat(client, model="minilm", tool_choice="required")
    assert_error(response, 400, "model", "does not support")


# ---------------------------------------------------------------- the openai SDK's helpers


@pytest.fixture
async def sdk(root_app: Any) -> Any:
    import openai

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=root_app))
    async with openai.AsyncOpenAI(
        base_url="http://test/v1", api_key="x", http_client=http, max_retries=0
    ) as client:
        yield client


async def test_the_sdks_stream_helper_assembles_the_calls(
    sdk: Any, generator: ScriptedGenerator
) -> None:
    """openai's `chat.completions.stream` accumulates tool-call deltas its own way."""
    generator.tool_call_parser = "hermes"
    generator.scripts = [
        HERMES + '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    ]
    async with sdk.chat.completions.stream(
        model="gpt", messages=USER, tools=TOOLS, tool_choice="auto"
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert [(c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", "{}"),
    ]


async def test_the_sdks_parse_helper_takes_a_json_schema_reply(
    sdk: Any, generator: ScriptedGenerator
) -> None:
    """`chat.completions.parse` sends a strict json_schema made from a pydantic model."""
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    generator.scripts = ['{"name": "Ada", "age": 36}']
    completion = await sdk.chat.completions.parse(
        model="gpt", messages=USER, response_format=Person
    )
    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)
    structured = generator.requests[0].params.structured
    assert structured is not None and structured.kind == "json_schema"
    assert json.loads(structured.schema or "")["required"] == ["name", "age"]
