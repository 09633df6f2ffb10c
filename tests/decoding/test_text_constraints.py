"""regex, EBNF grammar, choice and structural tag constraints (vLLM's structured_outputs) on the
tiny gpt2-chat tokenizer: they compile, their matchers accept exactly their language, and bad
or hostile constraints are InvalidInput naming the field before or from xgrammar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from hf_runtime.decoding.grammar import GrammarCompiler
from hf_runtime.decoding.schema_limits import MAX_PATTERN_NESTING, MAX_SCHEMA_BYTES
from hf_runtime.decoding.text_constraints import MAX_CHOICES, choice_grammar
from hf_runtime.errors import InvalidInput
from hf_runtime.types import StructuredOutput

P = "structured_outputs"


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]) -> Any:
    return AutoTokenizer.from_pretrained(tiny_models["gpt2-chat"])


def compiler(tokenizer: Any) -> GrammarCompiler:
    return GrammarCompiler(
        tokenizer, vocab_size=len(tokenizer), stop_token_ids=[tokenizer.eos_token_id]
    )


def accepts(grammars: GrammarCompiler, tokenizer: Any, out: StructuredOutput, text: str) -> bool:
    grammar = grammars.compile_blocking(out)
    assert grammar is not None
    matcher = grammar.matcher()
    ids = tokenizer.encode(text, add_special_tokens=False)
    return all(matcher.accept(t) for t in ids) and matcher.completed


@pytest.mark.parametrize(
    ("out", "good", "bad"),
    [
        (StructuredOutput("choice", '["yes","no \\"x\\"\\n"]', P), 'no "x"\n', "maybe"),
        (StructuredOutput("regex", "[0-9]{3}-[a-z]+", P), "123-abc", "12-abc"),
        (StructuredOutput("grammar", 'root ::= "a" ("b" | "c")*', P), "abcb", "ba"),
        (
            StructuredOutput(
                "structural_tag",
                json.dumps(
                    {"type": "structural_tag", "format": {"type": "const_string", "value": "hello"}}
                ),
                P,
            ),
            "hello",
            "help",
        ),
    ],
)
def test_constraints_accept_exactly_their_language(
    tokenizer: Any, out: StructuredOutput, good: str, bad: str
) -> None:
    grammars = compiler(tokenizer)
    assert accepts(grammars, tokenizer, out, good)
    assert not accepts(grammars, tokenizer, out, bad)


def test_choice_grammar_escapes_every_special_character() -> None:
    assert choice_grammar(['a"b', "c\\d", "e\x01"]) == 'root ::= "a\\"b" | "c\\\\d" | "e\\u0001"'


@pytest.mark.parametrize(
    ("out", "contains"),
    [
        (StructuredOutput("regex", "a(", P), "regular expression"),
        (StructuredOutput("grammar", "root ::= foo", P), "EBNF grammar"),
        (StructuredOutput("grammar", "not a grammar", P), "EBNF grammar"),
        (StructuredOutput("structural_tag", '{"type": "nope"}', P), "structural tag"),
        (StructuredOutput("structural_tag", "[1]", P), "JSON object"),
        (StructuredOutput("structural_tag", "{", P), "not valid JSON"),
        (StructuredOutput("regex", "", P), "must not be empty"),
        (StructuredOutput("regex", "a\x00", P), "NUL"),
        (StructuredOutput("grammar", 'root ::= "\x00"', P), "NUL"),
        (StructuredOutput("regex", "(" * 40 + "a" + ")" * 40, P), "nests groups"),
        (StructuredOutput("regex", "a" * (MAX_SCHEMA_BYTES + 1), P), "bytes"),
        (StructuredOutput("choice", "[]", P), "non-empty list"),
        (StructuredOutput("choice", '["a", ""]', P), "non-empty string"),
        (StructuredOutput("choice", json.dumps(["a"] * (MAX_CHOICES + 1)), P), "at most"),
        (StructuredOutput("structural_tag", "[" * 70 + "]" * 70, P), "nested"),
    ],
)
async def test_bad_constraints_are_invalid_input_naming_the_field(
    tokenizer: Any, out: StructuredOutput, contains: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await compiler(tokenizer).compile(out)
    assert caught.value.param == P
    assert contains in caught.value.message, caught.value.message


def test_nesting_limit_is_the_schema_patterns_one() -> None:
    assert MAX_PATTERN_NESTING == 32
