"""The checks every backend runs on a structured-output constraint before compiling it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hf_runtime.decoding.schema_limits import (
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    check_structured,
    json_depth,
    unsupported_feature,
)
from hf_runtime.errors import InvalidInput
from hf_runtime.types import StructuredOutput


def schema_output(schema: Any, param: str = "tool_choice") -> StructuredOutput:
    text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
    return StructuredOutput("json_schema", text, param)


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def test_a_valid_schema_is_returned_parsed() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert check_structured(schema_output(schema)) == schema
    assert check_structured(StructuredOutput("json_object")) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"just a string"', "must be a JSON object"),
        ('{"type": "strin"}', "not a valid JSON Schema"),
        ('{"properties": 3}', "not a valid JSON Schema at /properties"),
        ('{"type": "integer", "minimum": "zero"}', "not a valid JSON Schema"),
        ("   ", "needs a schema"),
        (json.dumps(nested(MAX_SCHEMA_DEPTH)), "nested too deeply"),
        ("[" * 60_000, "nested too deeply"),  # refused before json.loads could recurse
        ('{"description": "' + "x" * MAX_SCHEMA_BYTES + '"}', "bytes; at most"),
    ],
)
def test_bad_schemas_are_invalid_input_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_structured(schema_output(text))
    assert caught.value.param == "tool_choice"


def test_depth_counts_objects_and_arrays_but_not_brackets_in_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth('"\\"[["') == 0
    # Just under the bound passes: the nesting of vLLM's own limit, so vLLM agrees.
    check_structured(schema_output(nested(MAX_SCHEMA_DEPTH // 2 - 1)))


def test_json_object_takes_no_schema_and_unknown_kinds_fail() -> None:
    with pytest.raises(InvalidInput, match="takes no schema"):
        check_structured(StructuredOutput("json_object", "{}", "response_format"))
    with pytest.raises(InvalidInput, match="unknown structured output kind"):
        check_structured(StructuredOutput("regex", "a+", "response_format"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"not": {"type": "string"}}, "'not'"),
        ({"$ref": "https://example.com/s.json"}, "outside the schema"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "contains": {"type": "string"}}, "contains"),
        ({"type": "string", "format": "credit-card"}, "format 'credit-card'"),
        ({"type": "string", "pattern": "^a+$", "maxLength": 3}, "minLength'/'maxLength"),
        ({"type": "string", "pattern": "^(?!x)."}, "lookahead"),
        ({"allOf": [{"type": "string"}, {"enum": ["a"]}]}, "allOf"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        (
            {"type": "object", "propertyNames": {"pattern": "^a"}, "properties": {"a": {}}},
            "propertyNames",
        ),
        ({"type": "object", "patternProperties": {"^a": {}, "^b": {}}}, "patternProperties"),
        # Deep inside: every subschema position is visited.
        ({"type": "object", "properties": {"x": {"anyOf": [{"not": {}}]}}}, "/properties/x"),
        ({"$defs": {"n": {"type": "number", "multipleOf": 2}}, "$ref": "#/$defs/n"}, "$defs/n"),
    ],
)
def test_features_the_grammar_would_ignore_are_refused(
    schema: dict[str, Any], feature: str
) -> None:
    with pytest.raises(InvalidInput, match="not supported") as caught:
        check_structured(schema_output(schema, "response_format"))
    assert feature in caught.value.message
    assert caught.value.param == "response_format"


@pytest.mark.parametrize(
    "schema",
    [
        # Keywords used as property names or inside data are not schema keywords.
        {"type": "object", "properties": {"not": {"type": "string"}, "format": {"type": "string"}}},
        {"enum": [{"type": "string", "format": "credit-card"}]},
        {"const": {"multipleOf": 3, "type": "integer"}},
        {"type": "string", "format": "email"},
        {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"},
        {"type": "integer", "minimum": 1, "exclusiveMaximum": 10},
        {"allOf": [{"type": "string"}]},
    ],
)
def test_supported_schemas_pass(schema: dict[str, Any]) -> None:
    assert unsupported_feature(schema) is None
    check_structured(schema_output(schema))


def ref_chain(length: int) -> dict[str, Any]:
    defs: dict[str, Any] = {f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(length)}
    defs[f"a{length}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/a0"}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "(" * 600 + "a" + ")" * 600}, "nests groups more than"),
        ({"type": "string", "pattern": "(" * 30_000 + ")" * 30_000}, "nests groups more than"),
        ({"properties": {"p": {"type": "string", "pattern": "((((" * 9 + "a"}}}, "nests groups"),
        (ref_chain(300), r"301 .\$ref.s; at most 256"),
    ],
)
def test_schemas_past_the_complexity_bounds_are_invalid_input(schema: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_structured(schema_output(schema))
    assert caught.value.param == "tool_choice"


def test_within_the_bounds_is_accepted() -> None:
    # Escaped parentheses and ones in a character class are no groups.
    pattern = r"\(" * 100 + "[(((]" * 100 + "(a(b))"
    assert check_structured(schema_output({"type": "string", "pattern": pattern}))
    assert check_structured(schema_output(ref_chain(100)))
    assert check_structured(schema_output({"enum": [[[[i]]] for i in range(2000)]}))


def test_a_check_that_overflows_the_recursion_limit_is_invalid_input(monkeypatch) -> None:
    def overflow(*_: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("hf_runtime.decoding.schema_limits.check_metaschema", overflow)
    with pytest.raises(InvalidInput, match="nested too deeply to be checked") as caught:
        check_structured(schema_output({"type": "string"}))
    assert caught.value.param == "tool_choice"
