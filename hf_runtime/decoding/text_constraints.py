"""Checks on the non-JSON-Schema constraints of vLLM's `structured_outputs` (regex, EBNF
grammar, choice, structural tag), and the EBNF grammar a choice list becomes.

Like `schema_limits`, pure Python and run by both backends before anything is compiled, so a
bad or hostile constraint costs a 400 and the same 400 everywhere: the text is bounded in size,
in nesting (xgrammar's parsers recurse once per group) and, for a structural tag, in JSON
depth; anything else wrong is found by xgrammar's own parser, whose message the 400 carries.
"""

from __future__ import annotations

import json
from typing import Any

from hf_runtime.decoding.schema_limits import (
    MAX_PATTERN_NESTING,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    json_depth,
    pattern_nesting,
)
from hf_runtime.errors import InvalidInput
from hf_runtime.types import StructuredOutput

TEXT_KINDS = ("regex", "grammar", "choice", "structural_tag")
MAX_CHOICES = 1024
# Characters an EBNF string literal must escape (xgrammar reads C-style escapes).
_EBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def check_text_constraint(structured: StructuredOutput) -> None:
    """InvalidInput naming `structured.param` for a constraint that must not be compiled."""
    param = structured.param
    kind = structured.kind
    text = structured.schema
    label = f"structured_outputs.{kind}"
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"{label} must not be empty", param=param)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SCHEMA_BYTES:
        raise InvalidInput(
            f"{label} is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted", param=param
        )
    if "\x00" in text and kind in ("regex", "grammar"):
        # xgrammar's native parsers do not handle NUL (vLLM refuses it too).
        raise InvalidInput(f"{label} must not contain a NUL character", param=param)
    if kind in ("regex", "grammar") and pattern_nesting(text) > MAX_PATTERN_NESTING:
        raise InvalidInput(
            f"{label} nests groups more than {MAX_PATTERN_NESTING} deep", param=param
        )
    if kind == "choice":
        choices(structured)
    if kind == "structural_tag":
        if json_depth(text) > MAX_SCHEMA_DEPTH:
            raise InvalidInput(
                f"{label} is nested more than {MAX_SCHEMA_DEPTH} levels deep", param=param
            )
        tag = _loads(text, label, param)
        if not isinstance(tag, dict):
            raise InvalidInput(f"{label} must be a JSON object", param=param)


def choices(structured: StructuredOutput) -> list[str]:
    """The choice list of a "choice" constraint (its text is a JSON array), checked."""
    label, param = "structured_outputs.choice", structured.param
    values = _loads(structured.schema or "", label, param)
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"{label} must be a non-empty list of strings", param=param)
    if len(values) > MAX_CHOICES:
        raise InvalidInput(f"{label} may hold at most {MAX_CHOICES} strings", param=param)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{label}[{i}] must be a non-empty string", param=param)
    return values


def choice_grammar(values: list[str]) -> str:
    """An EBNF grammar (xgrammar's dialect) whose only sentences are `values`."""
    return "root ::= " + " | ".join(_ebnf_literal(value) for value in values)


def _ebnf_literal(value: str) -> str:
    out = []
    for char in value:
        if char in _EBNF_ESCAPES:
            out.append(_EBNF_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _loads(text: str, label: str, param: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{label} is not valid JSON", param=param) from None
