"""vLLM's `structured_outputs` request field (chat and completions), validated and turned into
the neutral `StructuredOutput` both backends compile: exactly one of `json`, `json_object`,
`regex`, `choice`, `grammar` (EBNF as xgrammar reads it) or `structural_tag` (xgrammar's JSON
format). The constraint's own checks (sizes, nesting, xgrammar's parse) run where it is
compiled (hf_runtime.decoding), so both backends give the same 400s.
"""

from __future__ import annotations

import json
from typing import Any

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.protocols.openai.structured import canonical_schema
from hf_runtime.types import StructuredOutput

PARAM = "structured_outputs"
CONSTRAINT_KEYS = ("json", "json_object", "regex", "choice", "grammar", "structural_tag")
# Options vLLM has that change the output and that the grammars here do not implement.
_UNSUPPORTED_OPTIONS = {
    "disable_any_whitespace": "JSON output always allows whitespace between tokens here",
    "whitespace_pattern": "JSON output always allows any whitespace here",
}
# Options that match what is always done here: JSON objects never get extra properties.
_NEUTRAL_OPTIONS = ("disable_additional_properties",)


def structured_outputs_constraint(value: dict[str, Any] | None) -> StructuredOutput | None:
    """`structured_outputs` -> its constraint (None when not given)."""
    if value is None:
        return None
    unknown = sorted(
        key
        for key in value
        if key not in CONSTRAINT_KEYS
        and key not in _UNSUPPORTED_OPTIONS
        and key not in _NEUTRAL_OPTIONS
    )
    if unknown:
        raise InvalidInput(
            f"structured_outputs.{unknown[0][:64]} is not a structured_outputs field; the "
            f"constraint is one of {', '.join(CONSTRAINT_KEYS)}",
            param=PARAM,
        )
    for option, why in _UNSUPPORTED_OPTIONS.items():
        if value.get(option) not in (None, False):
            raise Unsupported(f"structured_outputs.{option} is not supported: {why}", param=PARAM)
    if value.get("disable_additional_properties") not in (None, True, False):
        raise InvalidInput(
            "structured_outputs.disable_additional_properties must be true or false", param=PARAM
        )
    given = [key for key in CONSTRAINT_KEYS if value.get(key) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "structured_outputs must hold exactly one constraint ("
            + ", ".join(CONSTRAINT_KEYS)
            + f"); got {', '.join(given) if given else 'none'}",
            param=PARAM,
        )
    kind = given[0]
    return _constraint(kind, value[kind])


def _constraint(kind: str, spec: Any) -> StructuredOutput:
    where = f"structured_outputs.{kind}"
    if kind == "json_object":
        if spec is not True:
            raise InvalidInput(f"{where} must be true", param=PARAM)
        return StructuredOutput("json_object", None, PARAM)
    if kind == "json":
        if isinstance(spec, str):
            spec = _loads(spec, where)
        if not isinstance(spec, dict):
            raise InvalidInput(f"{where} must be a JSON Schema object", param=PARAM)
        return StructuredOutput("json_schema", canonical_schema(spec, PARAM), PARAM)
    if kind == "choice":
        if not isinstance(spec, list) or not all(isinstance(c, str) for c in spec):
            raise InvalidInput(f"{where} must be a list of strings", param=PARAM)
        text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
        return StructuredOutput("choice", text, PARAM)
    if kind == "structural_tag":
        if isinstance(spec, dict):
            spec = canonical_schema(spec, PARAM)
        if not isinstance(spec, str):
            raise InvalidInput(f"{where} must be a JSON object or its JSON text", param=PARAM)
        return StructuredOutput("structural_tag", spec, PARAM)
    if not isinstance(spec, str):  # regex, grammar
        raise InvalidInput(f"{where} must be a string", param=PARAM)
    return StructuredOutput(kind, spec, PARAM)  # type: ignore[arg-type]  # a StructuredKind


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{where} is not valid JSON", param=PARAM) from None


def format_constraint(
    response_format: StructuredOutput | None, structured: StructuredOutput | None
) -> StructuredOutput | None:
    """The one output format a request asks for: response_format or structured_outputs."""
    if response_format is not None and structured is not None:
        raise InvalidInput(
            "response_format json_object / json_schema and structured_outputs cannot both be "
            "given: the output follows one constraint",
            param=PARAM,
        )
    return response_format or structured
