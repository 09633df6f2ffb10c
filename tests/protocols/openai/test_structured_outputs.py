"""vLLM's structured_outputs on /chat/completions and /completions: each constraint reaches
the engine as the neutral StructuredOutput; every bad shape is a 400 naming the field; fields
that would change the output and are not implemented are a 400, not silently dropped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hf_runtime.types import StructuredOutput
from tests.protocols.openai.fakes import ScriptedGenerator
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio

ROUTES = ["/chat/completions", "/completions"]
P = "structured_outputs"


async def post(client: httpx.AsyncClient, route: str, **fields: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt", **fields}
    if route == "/chat/completions":
        body.setdefault("messages", [{"role": "user", "content": "Pick"}])
    else:
        body.setdefault("prompt", "Pick: ")
    return await client.post(f"/v1{route}", json=body)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"choice": ["yes", "no"]}, StructuredOutput("choice", '["yes","no"]', P)),
        ({"regex": "[0-9]{3}"}, StructuredOutput("regex", "[0-9]{3}", P)),
        ({"grammar": 'root ::= "a" | "b"'}, StructuredOutput("grammar", 'root ::= "a" | "b"', P)),
        ({"json": {"type": "integer"}}, StructuredOutput("json_schema", '{"type":"integer"}', P)),
        ({"json": '{"type": "integer"}'}, StructuredOutput("json_schema", '{"type":"integer"}', P)),
        ({"json_object": True}, StructuredOutput("json_object", None, P)),
        (
            {
                "structural_tag": {
                    "type": "structural_tag",
                    "format": {"type": "const_string", "value": "x"},
                }
            },
            StructuredOutput(
                "structural_tag",
                '{"type":"structural_tag","format":{"type":"const_string","value":"x"}}',
                P,
            ),
        ),
        ({"regex": "a", "disable_additional_properties": True}, StructuredOutput("regex", "a", P)),
    ],
)
async def test_each_constraint_reaches_the_engine(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    route: str,
    value: dict[str, Any],
    expected: StructuredOutput,
) -> None:
    generator.scripts = ["yes"]
    response = await post(client, route, structured_outputs=value)
    assert response.status_code == 200, response.text
    assert [r.params.structured for r in generator.requests] == [expected]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("value", "contains"),
    [
        ({}, "exactly one constraint"),
        ({"regex": "a", "choice": ["a"]}, "exactly one constraint"),
        ({"choice": "yes"}, "list of strings"),
        ({"choice": [1, 2]}, "list of strings"),
        ({"regex": 5}, "must be a string"),
        ({"grammar": ["root"]}, "must be a string"),
        ({"json": "{not json"}, "not valid JSON"),
        ({"json": [1]}, "JSON Schema object"),
        ({"json_object": False}, "must be true"),
        ({"structural_tag": 3}, "JSON object"),
        ({"regexp": "a"}, "not a structured_outputs field"),
        ({"regex": "a", "disable_any_whitespace": True}, "disable_any_whitespace"),
        ({"regex": "a", "whitespace_pattern": " "}, "whitespace_pattern"),
        ("regex", "valid dictionary"),
    ],
)
async def test_bad_shapes_are_400_naming_the_field(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    route: str,
    value: Any,
    contains: str,
) -> None:
    response = await post(client, route, structured_outputs=value)
    assert_error(response, 400, P, contains)
    assert generator.requests == []


@pytest.mark.parametrize("route", ROUTES)
async def test_response_format_and_structured_outputs_conflict(
    client: httpx.AsyncClient, route: str
) -> None:
    response = await post(
        client, route, structured_outputs={"regex": "a"}, response_format={"type": "json_object"}
    )
    assert_error(response, 400, P, "cannot both be given")


async def test_forced_tool_call_and_structured_outputs_conflict(
    client: httpx.AsyncClient,
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    response = await post(
        client,
        "/chat/completions",
        structured_outputs={"regex": "a"},
        tools=tools,
        tool_choice="required",
    )
    assert_error(response, 400, P, "forced tool_choice")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("guided_json", {"type": "object"}),
        ("guided_regex", "a+"),
        ("guided_choice", ["a"]),
        ("guided_grammar", "root ::= 'a'"),
        ("use_beam_search", True),
        ("skip_special_tokens", False),
        ("include_stop_str_in_output", True),
        ("prompt_logprobs", 1),
        ("allowed_token_ids", [1]),
        ("bad_words", ["x"]),
        ("logits_processors", ["x"]),
        ("functions", [{"name": "f"}]),
        ("reasoning_effort", "high"),
        ("modalities", ["text", "audio"]),
        ("truncate_prompt_tokens", 5),
    ],
)
async def test_unimplemented_output_changing_fields_are_400(
    client: httpx.AsyncClient, generator: ScriptedGenerator, route: str, name: str, value: Any
) -> None:
    response = await post(client, route, **{name: value})
    assert_error(response, 400, name, "not supported")
    assert generator.requests == []


@pytest.mark.parametrize("route", ROUTES)
async def test_their_defaults_are_accepted(
    client: httpx.AsyncClient, generator: ScriptedGenerator, route: str
) -> None:
    generator.scripts = ["ok"]
    response = await post(
        client,
        route,
        use_beam_search=False,
        skip_special_tokens=True,
        include_stop_str_in_output=False,
        modalities=["text"],
        reasoning_effort=None,
        bad_words=[],
        service_tier="auto",
        store=False,
    )
    assert response.status_code == 200, response.text
