"""Checks on a structured-output constraint that need no grammar engine.

Both backends run them before anything is compiled, so a bad or hostile schema gets the same
400 everywhere: the text is bounded in size and nesting (vLLM's nesting limit, so vLLM never
rejects what passes here), must be a JSON object that passes its JSON Schema metaschema, and
must not use keywords xgrammar would silently ignore (the output would then not follow the
schema the client sent: vLLM's own list of such features, plus a few more found by probing
xgrammar 0.2.8). Pure Python; jsonschema is imported only when a schema is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from hf_runtime.errors import InvalidInput
from hf_runtime.types import StructuredOutput

MAX_SCHEMA_BYTES = 64 * 1024  # UTF-8 bytes of the schema text
MAX_SCHEMA_DEPTH = 64  # nested objects/arrays: vLLM's MAX_STRUCTURED_OUTPUT_JSON_NESTING
# Nested groups in one `pattern`: Python's regex parser (the metaschema's "regex" format
# check) and xgrammar's recurse once or more per group; real patterns nest a few levels.
MAX_PATTERN_NESTING = 32
# `$ref`s in a schema: each may send xgrammar down another chain of definitions.
MAX_SCHEMA_REFS = 256

# The string formats xgrammar turns into a grammar; any other format would be ignored.
XGRAMMAR_STRING_FORMATS = frozenset({
    "email", "date", "time", "date-time", "duration", "ipv4", "ipv6", "hostname", "uuid",
    "uri", "uri-reference", "uri-template", "json-pointer", "relative-json-pointer",
})  # fmt: skip
# Keywords xgrammar 0.2.8 accepts and then ignores, whatever the type.
_IGNORED_KEYWORDS = ("not", "dependentRequired")
_ARRAY_IGNORED = ("uniqueItems", "contains", "minContains", "maxContains")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def check_structured(structured: StructuredOutput) -> dict[str, Any] | None:
    """The parsed schema of a valid constraint (None for json_object); InvalidInput naming
    `structured.param` otherwise. Whatever the schema, a 400: the explicit bounds come first,
    and a check that still overflows the recursion limit is the schema's fault too."""
    try:
        return _check_structured(structured)
    except RecursionError:
        raise InvalidInput(
            "the JSON schema is nested too deeply to be checked (subschemas, references or "
            "pattern groups)",
            param=structured.param,
        ) from None


def _check_structured(structured: StructuredOutput) -> dict[str, Any] | None:
    param = structured.param

    def bad(message: str) -> InvalidInput:
        return InvalidInput(message, param=param)

    if structured.kind == "json_object":
        if structured.schema is not None:
            raise bad("a json_object constraint takes no schema")
        return None
    if structured.kind != "json_schema":
        raise bad(f"unknown structured output kind {structured.kind!r}")
    text = structured.schema
    if not isinstance(text, str) or not text.strip():
        raise bad("a json_schema constraint needs a schema")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SCHEMA_BYTES:
        raise bad(f"the JSON schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted")
    # Before parsing: json.loads recurses once per level, so depth is bounded on the text.
    depth = json_depth(text)
    if depth > MAX_SCHEMA_DEPTH:
        raise bad(
            "the JSON schema is nested too deeply: objects and arrays may nest at most "
            f"{MAX_SCHEMA_DEPTH} levels"
        )
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise bad(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise bad(f"the JSON schema must be a JSON object, got {type(schema).__name__}")
    problem = complexity_problem(schema)  # before the metaschema: it compiles every pattern
    if problem is not None:
        raise bad(f"the JSON schema is too complex: {problem}")
    check_metaschema(schema, param)
    problem = unsupported_feature(schema)
    if problem is not None:
        raise bad(f"the JSON schema uses a feature that is not supported: {problem}")
    return schema


def json_depth(text: str) -> int:
    """Deepest nesting of objects and arrays in JSON text (strings skipped); the text need
    not be valid JSON."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING_LITERAL.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def complexity_problem(schema: dict[str, Any]) -> str | None:
    """What makes `schema` too complex to check or compile safely: a `pattern` nested past
    MAX_PATTERN_NESTING groups, or more than MAX_SCHEMA_REFS `$ref`s. Iterative, O(size)."""
    refs = 0
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern_nesting(pattern) > MAX_PATTERN_NESTING:
                return f"a 'pattern' nests groups more than {MAX_PATTERN_NESTING} deep"
            refs += isinstance(node.get("$ref"), str)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if refs > MAX_SCHEMA_REFS:
        return f"{refs} '$ref's; at most {MAX_SCHEMA_REFS}"
    return None


def pattern_nesting(pattern: str) -> int:
    """Deepest nesting of groups in a regular expression (escapes and classes skipped)."""
    depth = deepest = 0
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(depth - 1, 0)
    return deepest


def check_metaschema(schema: dict[str, Any], param: str) -> None:
    """The schema is a valid JSON Schema for its `$schema` draft (the newest when absent)."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        at = f" at /{where}" if where else ""
        raise InvalidInput(
            f"the JSON schema is not a valid JSON Schema{at}: {exc.message}", param=param
        ) from None


def unsupported_feature(schema: dict[str, Any]) -> str | None:
    """The first keyword (with its JSON pointer) the grammar engine would not enforce."""
    for pointer, node in _subschemas(schema, ""):
        problem = _node_problem(node)
        if problem is not None:
            return f"{problem} (at {pointer or '/'})"
    return None


# Where subschemas sit (everything else, e.g. enum/const/default, is data, not schema).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_ONE = (
    "items", "additionalProperties", "additionalItems", "unevaluatedProperties",
    "unevaluatedItems", "contains", "propertyNames", "not", "if", "then", "else",
)  # fmt: skip


def _subschemas(node: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (sub)schema object with its JSON pointer, depth first (depth bounded before)."""
    if not isinstance(node, dict):
        return
    yield pointer, node
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _subschemas(child, f"{pointer}/{key}/{name}")
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from _subschemas(child, f"{pointer}/{key}/{index}")
    for key in _SCHEMA_ONE:
        yield from _subschemas(node.get(key), f"{pointer}/{key}")


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {item for item in kind if isinstance(item, str)}
    return set()


def _node_problem(node: dict[str, Any]) -> str | None:
    types = _types(node)
    for keyword in _IGNORED_KEYWORDS:
        if keyword in node:
            return f"'{keyword}'"
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        return f"a $ref outside the schema ({ref!r}); only local references (#...) work"
    if types & {"integer", "number"} and "multipleOf" in node:
        return "'multipleOf'"
    if "array" in types:
        used = [k for k in _ARRAY_IGNORED if k in node]
        if used:
            return f"'{used[0]}' on an array"
    if "string" in types:
        fmt = node.get("format")
        if fmt is not None and fmt not in XGRAMMAR_STRING_FORMATS:
            return f"string format {fmt!r}"
        if ("pattern" in node or "format" in node) and ("minLength" in node or "maxLength" in node):
            return "'minLength'/'maxLength' together with 'pattern' or 'format'"
    pattern = node.get("pattern")
    if isinstance(pattern, str) and _LOOKAROUND.search(pattern):
        return "a lookahead or lookbehind in 'pattern'"
    if "object" in types:
        problem = _object_problem(node)
        if problem is not None:
            return problem
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) >= 2:
        return "'allOf' with several branches"
    return None


def _object_problem(node: dict[str, Any]) -> str | None:
    names = node.get("propertyNames")
    if "propertyNames" in node:
        if (
            isinstance(names, dict)
            and ("pattern" in names or "format" in names)
            and ("minLength" in names or "maxLength" in names)
        ):
            return "'propertyNames' with a length bound and a pattern or format"
        for other in ("patternProperties", "properties"):
            if other in node:
                return f"'propertyNames' together with '{other}'"
        if node.get("unevaluatedProperties", True) is not True:
            return "'propertyNames' together with 'unevaluatedProperties'"
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        if "properties" in node:
            return "'patternProperties' together with 'properties'"
        if len(patterns) > 1:
            return "several 'patternProperties'"
    return None
