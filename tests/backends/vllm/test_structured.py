"""Structured outputs on vLLM (tiny Llama): vLLM's own xgrammar gives exactly the tokens the
huggingface backend's in-engine grammar gives, the output ends the same way, and bad schemas
are the same 400s, checked before vLLM sees them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hf_runtime.errors import InvalidInput
from hf_runtime.model import TextGenerator
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams, StructuredOutput
from tests.backends.vllm.conftest import LoopRunner, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

PROMPT = "Hello world! This is"


def structured(schema: dict[str, Any] | None, param: str = "response_format") -> StructuredOutput:
    if schema is None:
        return StructuredOutput("json_object", None, param)
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return StructuredOutput("json_schema", text, param)


SCHEMAS: dict[str, dict[str, Any] | None] = {
    "enum": {"enum": ["yes", "no", "maybe"]},
    "object": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["s", "m", "l"]}},
        "required": ["ok", "size"],
    },
    "json_object": None,
}


@pytest.fixture(scope="module")
def models(llama: Any, hf_llama: Any) -> tuple[Any, Any]:
    """(vLLM, huggingface) serving the same tiny Llama: conftest.py's engines, shared with
    test_generation.py (outputs here are far shorter than their context)."""
    return llama, hf_llama


async def collect(model: Any, prompt: list[int], **params: Any) -> list[GenerationDelta]:
    request = GenerationRequest("structured", prompt, SamplingParams(**params))
    return [delta async for delta in model.capability(TextGenerator).generate(request)]


def ids_of(deltas: list[GenerationDelta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_constrained_greedy_equals_huggingface(
    models: tuple[Any, Any], run: LoopRunner, name: str
) -> None:
    vllm_model, hf_model = models
    prompt = run(vllm_model.tokenize(PROMPT))
    constraint = structured(SCHEMAS[name])
    ours = run(collect(vllm_model, prompt, temperature=0, max_tokens=48, structured=constraint))
    theirs = run(collect(hf_model, prompt, temperature=0, max_tokens=48, structured=constraint))
    assert ids_of(ours) == ids_of(theirs)
    text = "".join(d.text for d in ours)
    assert text == "".join(d.text for d in theirs)
    assert ours[-1].finish_reason == theirs[-1].finish_reason
    if ours[-1].finish_reason == "stop":
        value = json.loads(text)
        if SCHEMAS[name] is None:
            assert isinstance(value, dict)
        else:
            import jsonschema

            jsonschema.validate(value, SCHEMAS[name])


def test_the_grammar_ends_the_output_despite_ignore_eos_and_min_tokens(
    models: tuple[Any, Any], run: LoopRunner
) -> None:
    vllm_model, hf_model = models
    prompt = run(vllm_model.tokenize(PROMPT))
    params = {
        "temperature": 0, "max_tokens": 40, "ignore_eos": True, "min_tokens": 30,
        "structured": structured(SCHEMAS["enum"]),
    }  # fmt: skip
    ours = run(collect(vllm_model, prompt, **params))
    theirs = run(collect(hf_model, prompt, **params))
    assert ids_of(ours) == ids_of(theirs)
    assert (ours[-1].finish_reason, theirs[-1].finish_reason) == ("stop", "stop")
    assert json.loads("".join(d.text for d in ours)) in ("yes", "no", "maybe")


@pytest.mark.parametrize(
    "schema",
    ['{"type": "strin"}', "[1, 2]", '{"type": "integer", "multipleOf": 3}', '{"enum": []}'],
)
def test_bad_schemas_are_invalid_input_naming_the_field(
    models: tuple[Any, Any], run: LoopRunner, schema: str
) -> None:
    vllm_model, _ = models
    prompt = run(vllm_model.tokenize(PROMPT))
    bad = StructuredOutput("json_schema", schema, "tool_choice")
    with pytest.raises(InvalidInput) as caught:
        run(collect(vllm_model, prompt, max_tokens=4, structured=bad))
    assert caught.value.param == "tool_choice"


# vLLM's structured_outputs kinds beyond JSON (regex, EBNF grammar, choice, structural tag).
TEXT_CONSTRAINTS = {
    "choice": (StructuredOutput("choice", '["alpha","beta","gamma delta"]', "structured_outputs"),
               r"alpha|beta|gamma delta"),
    "regex": (StructuredOutput("regex", "[a-c]{2,6}-[0-9]{2}", "structured_outputs"),
              r"[a-c]{2,6}-[0-9]{2}"),
    "grammar": (StructuredOutput("grammar", 'root ::= "x" ("yz" | "w")+', "structured_outputs"),
                r"x(yz|w)+"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TEXT_CONSTRAINTS))
def test_text_constraints_greedy_equals_huggingface(
    models: tuple[Any, Any], run: LoopRunner, name: str
) -> None:
    import re

    vllm_model, hf_model = models
    prompt = run(vllm_model.tokenize(PROMPT))
    constraint, pattern = TEXT_CONSTRAINTS[name]
    ours = run(collect(vllm_model, prompt, temperature=0, max_tokens=12, structured=constraint))
    theirs = run(collect(hf_model, prompt, temperature=0, max_tokens=12, structured=constraint))
    assert ids_of(ours) == ids_of(theirs)
    text = "".join(d.text for d in ours)
    assert text == "".join(d.text for d in theirs)
    assert ours[-1].finish_reason == "stop"
    assert re.fullmatch(pattern, text), text
