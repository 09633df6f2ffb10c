"""response_format on /chat/completions and /completions: the constraint each shape asks for
reaches the engine; every bad shape is a 400 naming response_format, before any generation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hf_runtime.errors import InvalidInput
from hf_runtime.types import GenerationRequest, StructuredOutput
from tests.protocols.openai.fakes import ScriptedGenerator
from tests.protocols.openai.helpers import assert_error, parse_sse

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "A person as JSON"}]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
# Compact, in the client's key order: the grammar (and so the reply) follows the declared
# property order, as OpenAI's does ("name" before "age", not sorted).
CANONICAL = (
    '{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer",'
    '"minimum":0}},"required":["name","age"],"additionalProperties":false}'
)
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": SCHEMA, "strict": True, "description": "A."},
}


async def post(client: httpx.AsyncClient, route: str, **fields: Any) -> httpx.Response:
    body = {"model": "gpt", **fields}
    body.setdefault("messages" if route == "/chat/completions" else "prompt", USER)
    if route == "/completions" and body["prompt"] is USER:
        body["prompt"] = "A person as JSON: "
    return await client.post(f"/v1{route}", json=body)


@pytest.mark.parametrize("route", ["/chat/completions", "/completions"])
@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (JSON_SCHEMA, StructuredOutput("json_schema", CANONICAL, "response_format")),
        ({"type": "json_object"}, StructuredOutput("json_object", None, "response_format")),
        (  # OpenAI leaves the schema optional: any JSON object then
            {"type": "json_schema", "json_schema": {"name": "anything"}},
            StructuredOutput("json_object", None, "response_format"),
        ),
        ({"type": "text"}, None),
        (None, None),
    ],
)
async def test_the_constraint_reaches_the_engine(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    route: str,
    response_format: dict[str, Any] | None,
    expected: StructuredOutput | None,
) -> None:
    generator.scripts = ['{"name": "Ada", "age": 36}']
    response = await post(client, route, response_format=response_format, n=2)
    assert response.status_code == 200, response.text
    assert [r.params.structured for r in generator.requests] == [expected, expected]
    body = response.json()
    texts = [c["message"]["content"] if "message" in c else c["text"] for c in body["choices"]]
    assert [json.loads(t) for t in texts] == [{"name": "Ada", "age": 36}] * 2
    assert {c["finish_reason"] for c in body["choices"]} == {"stop"}


async def test_a_json_reply_streams_as_content(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    generator.scripts = ['{"name": "Ada", "age": 36}']
    response = await post(client, "/chat/completions", response_format=JSON_SCHEMA, stream=True)
    chunks = [e for e in parse_sse(response.text) if e != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert json.loads(text) == {"name": "Ada", "age": 36}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("tool_calls" not in c["choices"][0]["delta"] for c in chunks)


BAD_FORMATS: list[tuple[Any, str]] = [
    ("json", "response_format"),  # not an object: the type check's message
    ({}, "response_format.type must be one of"),
    ({"type": "xml"}, "got 'xml'"),
    ({"type": "json_schema"}, "response_format.json_schema is required"),
    ({"type": "json_schema", "json_schema": "person"}, "response_format.json_schema is required"),
    ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "json_schema.name is required"),
    ({"type": "json_schema", "json_schema": {"name": "a person", "schema": SCHEMA}}, "name"),
    ({"type": "json_schema", "json_schema": {"name": "p" * 65, "schema": SCHEMA}}, "name"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": [SCHEMA]}}, "JSON Schema"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": "{}"}}, "JSON Schema"),
    ({"type": "json_schema", "json_schema": {"name": "p", "strict": "yes"}}, "strict"),
    ({"type": "json_schema", "json_schema": {"name": "p", "description": 3}}, "description"),
]


@pytest.mark.parametrize("route", ["/chat/completions", "/completions"])
@pytest.mark.parametrize(("response_format", "contains"), BAD_FORMATS)
async def test_bad_response_formats_are_400s(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    route: str,
    response_format: Any,
    contains: str,
) -> None:
    response = await post(client, route, response_format=response_format)
    assert_error(response, 400, "response_format", contains)
    assert generator.requests == []


@pytest.mark.parametrize("route", ["/chat/completions", "/completions"])
async def test_response_format_on_an_embedding_model(client: httpx.AsyncClient, route: str) -> None:
    response = await post(client, route, model="minilm", response_format=JSON_SCHEMA)
    assert_error(response, 400, "model", "does not support")


async def test_response_format_with_a_forced_tool_call_is_refused(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    for choice in ("required", {"type": "function", "function": {"name": "f"}}):
        response = await post(
            client,
            "/chat/completions",
            tools=tools,
            tool_choice=choice,
            response_format={"type": "json_object"},
        )
        assert_error(response, 400, "response_format", "cannot be combined")
    assert generator.requests == []


async def test_the_engines_schema_errors_keep_their_param(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    """Engines compile schemas; what they refuse is a 400 naming the request's field."""
    original = generator.generate

    async def strict(request: GenerationRequest) -> AsyncIterator[Any]:
        structured = request.params.structured
        if structured is not None and structured.schema and "$ref" in structured.schema:
            raise InvalidInput("unresolvable $ref", param=structured.param)
        async for delta in original(request):
            yield delta

    generator.generate = strict  # type: ignore[method-assign]
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    for stream in (False, True):
        response = await post(
            client,
            "/chat/completions",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            stream=stream,
        )
        assert_error(response, 400, "response_format", "unresolvable $ref")
