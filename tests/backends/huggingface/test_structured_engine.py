"""Constrained decoding inside the continuous-batching engine: on the tiny random models (gpt2
causal, t5 seq2seq, both batch kinds) every output token follows the grammar; constrained and
free sequences share decoding steps without changing the free ones' text; bad schemas fail
before admission. On SmolLM2 (slow) the outputs are complete and valid JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
from hf_runtime.errors import InvalidInput
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams, StructuredOutput

SCHEMAS: dict[str, dict[str, Any] | None] = {
    "enum": {"enum": ["red", "green", "blue"]},
    "integer": {"type": "integer", "minimum": 0, "maximum": 99},
    "object": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["city"],
            },
        },
        "required": ["name", "tags", "address"],
    },
    "tool-call": {  # what a forced tool call (tool_choice naming a function) constrains to
        "type": "object",
        "properties": {
            "name": {"const": "get_weather"},
            "arguments": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
                "required": ["city", "unit"],
            },
        },
        "required": ["name", "arguments"],
    },
    "json_object": None,
}


def constraint(schema: dict[str, Any] | None, param: str = "response_format") -> StructuredOutput:
    if schema is None:
        return StructuredOutput("json_object", None, param)
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return StructuredOutput("json_schema", text, param)


def check_valid(text: str, schema: dict[str, Any] | None) -> None:
    value = json.loads(text)
    if schema is None:
        assert isinstance(value, dict)
    else:
        jsonschema.validate(value, schema)


class Loaded:
    def __init__(self, path: Path, seq2seq: bool) -> None:
        cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        self.model = cls.from_pretrained(path, dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)

    def engine(self, **options: Any) -> HFGenerationEngine:
        settings: dict[str, Any] = {"max_model_len": 256, "max_num_seqs": 8, "max_queue_size": 16}
        settings.update(options)
        eos = {self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id} - {None}
        return HFGenerationEngine(self.model, self.tokenizer, eos_token_ids=eos, **settings)


@pytest.fixture(scope="module")
def gpt2(tiny_models: dict[str, Path]) -> Loaded:
    return Loaded(tiny_models["gpt2-chat"], seq2seq=False)


@pytest.fixture(scope="module", params=["padded", "per-row"])
def setup(
    request: pytest.FixtureRequest, gpt2: Loaded
) -> Iterator[tuple[Loaded, HFGenerationEngine]]:
    loaded = gpt2
    engine = loaded.engine(padded_batching=request.param == "padded")
    yield loaded, engine
    engine.close()


async def generate(
    engine: HFGenerationEngine, prompt: list[int], **params: Any
) -> list[GenerationDelta]:
    request = GenerationRequest("structured", prompt, SamplingParams(**params))
    return [delta async for delta in engine.generate(request)]


def ids_of(deltas: list[GenerationDelta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


def text_of(deltas: list[GenerationDelta]) -> str:
    return "".join(d.text for d in deltas)


async def assert_follows_grammar(
    engine: HFGenerationEngine, structured: StructuredOutput, deltas: list[GenerationDelta]
) -> None:
    """Every token is one the grammar allowed at its place (a fresh matcher accepts them)."""
    grammar = await engine.grammars.compile(structured)
    assert grammar is not None
    matcher = grammar.matcher()
    for token in ids_of(deltas):
        assert matcher.accept(token)
    if deltas[-1].finish_reason == "stop":
        assert matcher.terminated


@pytest.mark.parametrize("name", list(SCHEMAS))
async def test_every_token_follows_the_grammar(
    setup: tuple[Loaded, HFGenerationEngine], name: str
) -> None:
    loaded, engine = setup
    structured = constraint(SCHEMAS[name])
    for seed, prompt in enumerate(["Hello", "The capital of France is"]):
        ids = loaded.tokenizer.encode(prompt)
        greedy = await generate(engine, ids, temperature=0, max_tokens=40, structured=structured)
        sampled = await generate(engine, ids, seed=seed, max_tokens=40, structured=structured)
        for deltas in (greedy, sampled):
            await assert_follows_grammar(engine, structured, deltas)
            if deltas[-1].finish_reason == "stop":
                check_valid(text_of(deltas), SCHEMAS[name])
            else:  # cut by max_tokens: "length", the partial text is streamed
                assert deltas[-1].finish_reason == "length" and len(ids_of(deltas)) == 40


async def test_seq2seq_rows_are_constrained_and_a_dead_end_ends_cleanly(
    tiny_models: dict[str, Path],
) -> None:
    t5 = Loaded(tiny_models["t5"], seq2seq=True)
    engine = t5.engine()
    try:
        prompt = t5.tokenizer.encode("translate English to German: How are you?")
        number = constraint(SCHEMAS["integer"])
        deltas = await generate(engine, prompt, temperature=0, max_tokens=8, structured=number)
        await assert_follows_grammar(engine, number, deltas)
        if deltas[-1].finish_reason == "stop":
            check_valid(text_of(deltas), SCHEMAS["integer"])
        # The tiny t5 vocabulary has no '"': after "{" no token can follow. The mask leaves
        # nothing, and the sequence ends there ("stop", no token) instead of sampling from an
        # all -inf row.
        record = constraint(SCHEMAS["object"])
        deltas = await generate(engine, prompt, temperature=0, max_tokens=8, structured=record)
        assert deltas[-1].finish_reason == "stop" and text_of(deltas).strip() == "{"
        assert len(ids_of(deltas)) < 8 and t5.tokenizer.eos_token_id not in ids_of(deltas)
    finally:
        engine.close()


async def test_max_tokens_cut_is_length_with_partial_text(gpt2: Loaded) -> None:
    engine = gpt2.engine()
    try:
        structured = constraint(SCHEMAS["tool-call"])
        ids = gpt2.tokenizer.encode("Hello")
        deltas = await generate(engine, ids, temperature=0, max_tokens=3, structured=structured)
        assert deltas[-1].finish_reason == "length" and len(ids_of(deltas)) == 3
        assert text_of(deltas).lstrip().startswith("{")
        await assert_follows_grammar(engine, structured, deltas)
    finally:
        engine.close()


async def test_constrained_and_free_sequences_share_steps_and_free_text_is_unchanged(
    gpt2: Loaded,
) -> None:
    engine = gpt2.engine()
    try:
        prompts = [gpt2.tokenizer.encode(p) for p in ("Hello", "Paris", "x y z", "The the")]
        free = {"temperature": 0, "max_tokens": 12, "ignore_eos": True}
        alone = [ids_of(await generate(engine, p, **free)) for p in prompts]
        schemas = [SCHEMAS["object"], SCHEMAS["tool-call"], None, SCHEMAS["object"]]
        for schema in schemas:  # compiled ahead, so all eight join the engine together
            await engine.grammars.compile(constraint(schema))
        before = engine.stats()
        results = await asyncio.gather(
            *(generate(engine, p, **free) for p in prompts),
            *(
                generate(engine, p, temperature=0, max_tokens=12, structured=constraint(s))
                for p, s in zip(prompts, schemas, strict=True)
            ),
        )
        after = engine.stats()
        assert [ids_of(r) for r in results[:4]] == alone  # greedy free text: exactly as alone
        for deltas, schema in zip(results[4:], schemas, strict=True):
            await assert_follows_grammar(engine, constraint(schema), deltas)
        steps = after["decode_steps"] - before["decode_steps"]
        rows = after["decoded_sequences"] - before["decoded_sequences"]
        assert rows > steps  # decoding steps carried several sequences...
        assert after["largest_decode_batch"] > len(prompts)  # ...constrained and free together
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{bad json", "not valid JSON"),
        ('{"type": "integer", "multipleOf": 2}', "multipleOf"),
        ('{"enum": []}', "enum array must not be empty"),
    ],
)
async def test_bad_schemas_fail_before_admission(gpt2: Loaded, text: str, message: str) -> None:
    engine = gpt2.engine()
    try:
        bad = StructuredOutput("json_schema", text, "tool_choice")
        with pytest.raises(InvalidInput, match=message) as caught:
            await generate(engine, gpt2.tokenizer.encode("Hello"), max_tokens=4, structured=bad)
        assert caught.value.param == "tool_choice"
        assert engine.admission.stats() == {"running": 0, "waiting": 0, "rejected_requests": 0}
        assert engine.stats()["decode_steps"] == 0
    finally:
        engine.close()


# ---------------------------------------------------------------------- real model

SMOLLM2_CASES: list[tuple[str, dict[str, Any] | None]] = [
    ("Describe a person named Bob who is 30 years old.", {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20},
                       "age": {"type": "integer", "minimum": 0, "maximum": 150}},
        "required": ["name", "age"],
    }),
    ("Is Paris the capital of France?", {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no"]}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
    }),
    ("List three colors.", {
        "type": "object",
        "properties": {"colors": {"type": "array", "minItems": 1, "maxItems": 3,
                                  "items": {"enum": ["red", "green", "blue", "yellow"]}}},
        "required": ["colors"],
    }),
    ("Give the address of the Eiffel Tower.", {
        "type": "object",
        "properties": {"address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30},
                           "country": {"type": "string", "maxLength": 30}},
            "required": ["city", "country"],
        }},
        "required": ["address"],
    }),
    ("What is the weather in Paris? Call the tool.", SCHEMAS["tool-call"]),
    ("What is the weather in Paris and in Rome? Call the tools.", {  # tool_choice "required"
        "type": "array", "minItems": 1, "maxItems": 2,
        "items": {"anyOf": [SCHEMAS["tool-call"]]},
    }),
    ("Count to three.", {"type": "array", "items": {"type": "integer"}, "minItems": 3,
                         "maxItems": 3}),
    ("Is the sky blue?", {"type": "boolean"}),
]  # fmt: skip


@pytest.mark.slow
def test_smollm2_gives_valid_json_for_each_schema(smollm2_dir: Path) -> None:
    loaded = Loaded(smollm2_dir, seq2seq=False)
    engine = loaded.engine(max_model_len=2048)

    def chat(question: str) -> list[int]:
        messages = [{"role": "user", "content": question + " Answer in JSON."}]
        return loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )

    async def scenario() -> None:
        runs = await asyncio.gather(
            *(
                generate(engine, chat(q), temperature=0, max_tokens=120, structured=constraint(s))
                for q, s in SMOLLM2_CASES
            )
        )
        for (question, schema), deltas in zip(SMOLLM2_CASES, runs, strict=True):
            assert deltas[-1].finish_reason == "stop", (question, text_of(deltas))
            check_valid(text_of(deltas), schema)
        weather = json.loads(text_of(runs[4]))
        assert weather["name"] == "get_weather" and "paris" in weather["arguments"]["city"].lower()
        # json_object: a JSON object, even if the model would rather nest forever.
        free_form = await generate(
            engine, chat("Describe Paris."), temperature=0, max_tokens=60,
            structured=constraint(None),
        )  # fmt: skip
        await assert_follows_grammar(engine, constraint(None), free_form)
        assert text_of(free_form).lstrip().startswith("{")

    try:
        asyncio.run(scenario())
    finally:
        engine.close()
