"""OpenAI's `response_format`, `tools` and `tool_choice`, validated and turned into what the
engines and the tool-call parsers need.

  - `response_format` json_object / json_schema -> a `StructuredOutput` (the engine constrains
    decoding to it); text -> nothing.
  - `tool_choice` naming a function -> the function's parameters schema; "required" -> an
    array of `{name, parameters}` objects (vLLM's schema, so answers match vLLM's); both are
    turned back into `tool_calls` by `tool_parsers.forced`.
  - `tool_choice` "auto" (or omitted, with tools) -> the model's own call syntax, read by the
    parser configured for the model (`generation.tool_call_parser`).
Every mistake is a 400 naming the field, in OpenAI's words where OpenAI has some.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from hf_runtime.errors import InvalidInput
from hf_runtime.types import StructuredOutput

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
# OpenAI's rule for response_format names and function names.
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Function names as OpenAI takes them, plus "." (MCP-style namespaced tools; vLLM takes any).
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PARSER_KEY = "generation.tool_call_parser"
_ANY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def canonical_schema(schema: dict[str, Any], param: str) -> str:
    """The schema as compact JSON text (no spaces), keys in the client's order: the grammar
    follows the declared property order (as OpenAI does), so sorting keys would reorder the
    output's properties. Equal schemas written in the same order share one compiled grammar."""
    try:
        return json.dumps(schema, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise InvalidInput(f"{param}: the JSON schema cannot be encoded", param=param) from None


def response_format_constraint(value: dict[str, Any] | None) -> StructuredOutput | None:
    """`response_format` -> the constraint it asks for (None: free text)."""
    if value is None:
        return None
    kind = value.get("type")
    if kind not in RESPONSE_FORMAT_TYPES:
        shown = "missing" if kind is None else repr(kind)
        raise InvalidInput(
            f"response_format.type must be one of {', '.join(map(repr, RESPONSE_FORMAT_TYPES))}; "
            f"got {shown}",
            param="response_format",
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredOutput("json_object", None, "response_format")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidInput(
            "response_format.json_schema is required when type is 'json_schema': an object "
            "with a name and a schema",
            param="response_format",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise InvalidInput(
            "response_format.json_schema.name is required: 1 to 64 letters, digits, '_' or '-'",
            param="response_format",
        )
    _optional(spec, "description", str, "response_format.json_schema", "response_format")
    _optional(spec, "strict", bool, "response_format.json_schema", "response_format")
    schema = spec.get("schema")
    if schema is None:  # OpenAI leaves it optional: any JSON object then
        return StructuredOutput("json_object", None, "response_format")
    if not isinstance(schema, dict):
        raise InvalidInput(
            "response_format.json_schema.schema must be a JSON Schema object",
            param="response_format",
        )
    return StructuredOutput("json_schema", canonical_schema(schema, "response_format"))


def _optional(spec: dict[str, Any], key: str, kind: type, where: str, param: str) -> None:
    value = spec.get(key)
    if value is not None and not isinstance(value, kind):
        label = "a string" if kind is str else "true or false"
        raise InvalidInput(f"{where}.{key} must be {label}", param=param)


# ---------------------------------------------------------------- tools


ToolMode = Literal["off", "auto", "named", "required"]


@dataclass(frozen=True)
class ToolPlan:
    """What the request's tools ask of generation and of the answer.

    `mode`: "off" (no call parsing: tools, if any, only reach the chat template), "auto" (the
    model's own syntax, read by the model's parser), "named" / "required" (constrained).
    `explicit` says tool_choice "auto" was asked for (not just implied by tools).
    """

    mode: ToolMode = "off"
    function: str | None = None  # the named function
    constraint: StructuredOutput | None = None
    parallel: bool = True
    explicit: bool = False

    def with_parser(self, parser: str | None, model: str) -> ToolPlan:
        """The plan for a model whose tool-call parser is `parser` (None: none configured)."""
        if self.mode != "auto" or parser is not None:
            return self
        if self.explicit:
            raise InvalidInput(
                f'"auto" tool choice needs a tool-call parser, and model {model} has none: '
                f"set {PARSER_KEY} (hermes, llama3_json, mistral or pythonic) in its "
                'configuration, or use tool_choice "required" or a named function',
                param="tool_choice",
            )
        return ToolPlan()  # tools given, tool_choice omitted: they only reach the template


def plan_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    parallel_tool_calls: bool | None,
) -> ToolPlan:
    """Validate tools and tool_choice (OpenAI's shapes, vLLM's rules) and plan the answer."""
    if tools is None:
        if tool_choice is None or tool_choice == "none":
            return ToolPlan()
        raise InvalidInput(
            "tool_choice is only allowed when tools are specified", param="tool_choice"
        )
    if not tools:
        raise InvalidInput(
            "tools must not be an empty array: give at least one tool or leave it out",
            param="tools",
        )
    functions = _functions(tools)
    parallel = parallel_tool_calls is not False
    if tool_choice is None or tool_choice == "auto":
        return ToolPlan("auto", parallel=parallel, explicit=tool_choice == "auto")
    if tool_choice == "none":
        return ToolPlan()
    if tool_choice == "required":
        schema = _required_schema(functions, parallel)
        text = canonical_schema(schema, "tools")
        constraint = StructuredOutput("json_schema", text, "tool_choice")
        return ToolPlan("required", None, constraint, parallel)
    name = _named_choice(tool_choice)
    if name not in functions:
        raise InvalidInput(
            f"tool_choice names function {name!r}, which is not among the tools",
            param="tool_choice",
        )
    text = canonical_schema(functions[name] or _ANY_OBJECT, "tools")
    return ToolPlan("named", name, StructuredOutput("json_schema", text, "tool_choice"))


def _named_choice(choice: str | dict[str, Any]) -> str:
    usage = '{"type": "function", "function": {"name": "my_function"}}'
    if isinstance(choice, str):
        raise InvalidInput(
            f"tool_choice must be 'none', 'auto', 'required' or {usage}; got {choice!r}",
            param="tool_choice",
        )
    function = choice.get("function")
    kind = choice.get("type", "function")
    name = function.get("name") if isinstance(function, dict) else None
    if kind != "function" or not isinstance(name, str) or not name:
        raise InvalidInput(
            f"tool_choice naming a function must look like {usage}", param="tool_choice"
        )
    return name


def _functions(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Function name -> its parameters schema (None when it takes none), checked."""
    found: dict[str, dict[str, Any] | None] = {}
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if tool.get("type", "function") != "function":
            raise InvalidInput(
                f"{where}.type must be 'function' (the only tool type supported), got "
                f"{tool.get('type')!r}",
                param="tools",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidInput(
                f"{where}.function is required: an object with a name", param="tools"
            )
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise InvalidInput(
                f"{where}.function.name is required: 1 to 64 letters, digits, '_', '-' or '.'",
                param="tools",
            )
        if name in found:
            raise InvalidInput(f"{where}: function {name!r} is defined twice", param="tools")
        _optional(function, "description", str, f"{where}.function", "tools")
        _optional(function, "strict", bool, f"{where}.function", "tools")
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise InvalidInput(
                    f"{where}.function.parameters must be a JSON Schema object", param="tools"
                )
            if parameters.get("type", "object") != "object":
                raise InvalidInput(
                    f"{where}.function.parameters must describe an object (type 'object'): "
                    "arguments are JSON objects",
                    param="tools",
                )
        found[name] = parameters or None
    return found


def _required_schema(functions: dict[str, dict[str, Any] | None], parallel: bool) -> dict[str, Any]:
    """vLLM's schema for tool_choice "required": one or more {name, parameters} objects.

    Each function's `$defs` move to the top, where its `#/$defs/...` references now point.
    """
    variants = []
    defs: dict[str, Any] = {}
    for name, parameters in functions.items():
        parameters = dict(parameters or _ANY_OBJECT)
        own_defs = parameters.pop("$defs", None)
        if own_defs is not None:
            if not isinstance(own_defs, dict):
                raise InvalidInput(
                    f"$defs in the parameters of function {name!r} must be an object",
                    param="tools",
                )
            for key, value in own_defs.items():
                if key in defs and defs[key] != value:
                    raise InvalidInput(
                        f"$defs entry {key!r} differs between functions; tool_choice "
                        "'required' needs one definition per name",
                        param="tools",
                    )
                defs[key] = value
        variants.append(
            {
                "properties": {
                    "name": {"type": "string", "enum": [name]},
                    "parameters": parameters,
                },
                "required": ["name", "parameters"],
            }
        )
    schema: dict[str, Any] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "object", "anyOf": variants},
    }
    if not parallel:
        schema["maxItems"] = 1
    if defs:
        schema["$defs"] = defs
    return schema


def one_constraint(
    response_format: StructuredOutput | None, plan: ToolPlan
) -> StructuredOutput | None:
    """The grammar of a chat request: a reply follows one, so a forced tool call and a
    response_format cannot both have one."""
    if response_format is not None and plan.constraint is not None:
        field = response_format.param
        shown = "response_format json_object / json_schema" if field == "response_format" else field
        raise InvalidInput(
            f"{shown} cannot be combined with a forced tool_choice ('required' or a named "
            "function): the reply is the tool call",
            param=field,
        )
    return plan.constraint or response_format
