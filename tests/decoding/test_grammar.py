"""The grammar module (xgrammar) on the tiny gpt2-chat tokenizer: compiling once, every bound,
bad schemas as InvalidInput naming the field, per-sequence masks, and SequenceState with a
grammar."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from hf_runtime.decoding.detokenize import TokenTextCache
from hf_runtime.decoding.grammar import Grammar, GrammarCompiler, GrammarMatcher
from hf_runtime.decoding.sampling import SampledToken
from hf_runtime.decoding.sequence import SequenceState
from hf_runtime.errors import HFRuntimeError, InvalidInput, Overloaded
from hf_runtime.types import GenerationRequest, SamplingParams, StructuredOutput

YES_NO = {"enum": ["yes", "no"]}


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]) -> Any:
    return AutoTokenizer.from_pretrained(tiny_models["gpt2-chat"])


def compiler(tokenizer: Any, **options: Any) -> GrammarCompiler:
    return GrammarCompiler(
        tokenizer, vocab_size=len(tokenizer), stop_token_ids=[tokenizer.eos_token_id], **options
    )


def schema(value: Any, param: str = "response_format") -> StructuredOutput:
    return StructuredOutput("json_schema", json.dumps(value, separators=(",", ":")), param)


# ---------------------------------------------------------------------- compiling


async def test_each_schema_compiles_once(tokenizer: Any) -> None:
    grammars = compiler(tokenizer)
    first = await grammars.compile(schema(YES_NO))
    assert isinstance(first, Grammar) and first.memory_bytes > 0
    assert await grammars.compile(schema(YES_NO, "tool_choice")) is first
    together = await asyncio.gather(
        *(grammars.compile(schema({"type": "boolean"})) for _ in range(6))
    )
    assert all(g is together[0] for g in together)  # concurrent callers share one compile
    assert grammars.stats["compiles"] == 2 and grammars.stats["cache_hits"] == 1


async def test_json_object_accepts_any_object(tokenizer: Any) -> None:
    grammar = await compiler(tokenizer).compile(StructuredOutput("json_object"))
    assert grammar is not None
    matcher = grammar.matcher()
    for token in tokenizer.encode('{"a": [1, {"b": null}]}'):
        assert matcher.accept(token)
    assert matcher.completed and not matcher.terminated
    assert matcher.accept(tokenizer.eos_token_id) and matcher.terminated


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"enum": []}, "enum array must not be empty"),  # passes the metaschema; xgrammar refuses
        ({"$ref": "#/$defs/missing"}, "not supported"),
        ({"type": "string", "pattern": "(?<=a)b"}, "lookahead or lookbehind"),
        ({"type": "strin"}, "not a valid JSON Schema"),
    ],
)
async def test_refused_schemas_are_invalid_input_and_remembered(
    tokenizer: Any, value: Any, message: str
) -> None:
    grammars = compiler(tokenizer)
    with pytest.raises(InvalidInput, match=message) as caught:
        await grammars.compile(schema(value, "tools"))
    assert caught.value.param == "tools"
    with pytest.raises(InvalidInput, match=message) as again:
        await grammars.compile(schema(value, "tool_choice"))
    assert again.value.param == "tool_choice"  # each request's own field
    assert grammars.stats["compiles"] == 1


async def test_the_cache_is_bounded_by_entries_and_bytes(tokenizer: Any) -> None:
    grammars = compiler(tokenizer, cache_entries=2)
    for kind in ("boolean", "integer", "null", "boolean"):
        await grammars.compile(schema({"type": kind}))
    assert grammars.stats["compiles"] == 4  # "boolean" was evicted by the third
    tight = compiler(tokenizer, cache_bytes=1)
    await tight.compile(schema({"type": "boolean"}))
    await tight.compile(schema({"type": "integer"}))
    assert len(tight._cache) == 1  # the newest stays, even over the byte bound


class SlowCompile:
    """Stands in for xgrammar: blocks until released, counting calls per schema."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str | None] = []

    def __call__(self, structured: StructuredOutput) -> None:
        self.calls.append(structured.schema)
        self.release.wait(30)


async def test_a_slow_compile_times_out_and_is_remembered_as_too_complex(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    grammars = compiler(tokenizer, timeout=0.2)
    slow = SlowCompile()
    monkeypatch.setattr(grammars, "_compile_now", slow)
    with pytest.raises(InvalidInput, match="schema too complex to compile within 0.2s") as caught:
        await grammars.compile(schema(YES_NO, "tool_choice"))
    assert caught.value.param == "tool_choice"
    assert grammars._threads == 1  # xgrammar cannot be interrupted: the thread runs on
    slow.release.set()
    await asyncio.to_thread(_wait_until, lambda: grammars._threads == 0)
    with pytest.raises(InvalidInput, match="too complex"):  # from the cache, no new compile
        await grammars.compile(schema(YES_NO))
    assert len(slow.calls) == 1


async def test_compiles_are_bounded_and_waiting_counts_in_the_timeout(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    grammars = compiler(tokenizer, timeout=0.3, max_concurrent=1, max_waiting=1)
    slow = SlowCompile()
    monkeypatch.setattr(grammars, "_compile_now", slow)
    hostile, waiting = schema({"type": "integer"}), schema({"type": "boolean"})
    first = asyncio.ensure_future(grammars.compile(hostile))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(grammars.compile(waiting))  # queued: the only thread is busy
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):  # the queue is full
        await grammars.compile(schema({"type": "null"}))
    for task in (first, second):
        with pytest.raises(InvalidInput, match="too complex"):
            await task
    assert grammars._threads == 1 and slow.calls == [hostile.schema]
    slow.release.set()
    await asyncio.to_thread(_wait_until, lambda: grammars._threads == 0)
    assert slow.calls == [hostile.schema]  # the queued job expired: never compiled...
    monkeypatch.undo()
    assert await grammars.compile(waiting) is not None  # ...nor cached: it compiles now


async def test_an_unexpected_failure_is_internal_and_not_cached(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    grammars = compiler(tokenizer)

    def broken(structured: StructuredOutput) -> None:
        raise MemoryError("out of memory")

    monkeypatch.setattr(grammars, "_compile_now", broken)
    with pytest.raises(HFRuntimeError, match="grammar compilation failed") as caught:
        await grammars.compile(schema(YES_NO))
    assert not isinstance(caught.value, InvalidInput)
    monkeypatch.undo()
    assert await grammars.compile(schema(YES_NO)) is not None


def _wait_until(condition: Any, timeout: float = 30.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not met")


# ---------------------------------------------------------------------- masks and sequences


@pytest.fixture(scope="module")
def yes_no(tokenizer: Any) -> Grammar:
    grammar = compiler(tokenizer).compile_blocking(schema(YES_NO))
    assert grammar is not None
    return grammar


def test_the_mask_leaves_exactly_the_tokens_the_grammar_accepts(
    tokenizer: Any, yes_no: Grammar
) -> None:
    matcher = yes_no.matcher()
    masked = matcher.mask(torch.zeros(len(tokenizer)))
    assert masked is not None
    allowed = set(torch.isfinite(masked).nonzero().flatten().tolist())
    assert allowed and len(allowed) < len(tokenizer)
    for token in range(len(tokenizer)):
        assert yes_no.matcher().accept(token) == (token in allowed), tokenizer.decode([token])
    for token in tokenizer.encode('"no"'):
        assert matcher.accept(token)
    final = matcher.mask(torch.zeros(len(tokenizer)))
    assert final is not None  # complete: only EOS is left
    assert torch.isfinite(final).nonzero().flatten().tolist() == [tokenizer.eos_token_id]


def test_the_torch_path_masks_like_the_numpy_path(tokenizer: Any, yes_no: Grammar) -> None:
    """Rows that are not float32 on the CPU (bf16, or on an accelerator) unpack the bitmask
    with torch on the row's device."""
    logits = torch.randn(len(tokenizer) + 7)  # wider than the vocabulary, as padded heads are
    numpy_row = yes_no.matcher().mask(logits)
    torch_row = yes_no.matcher().mask(logits.to(torch.bfloat16))
    assert numpy_row is not None and torch_row is not None
    assert numpy_row.shape == torch_row.shape == (len(tokenizer),)
    assert torch.equal(torch.isfinite(numpy_row), torch.isfinite(torch_row))


def sequence(tokenizer: Any, grammar: Grammar | None, **params: Any) -> SequenceState:
    request = GenerationRequest("r", tokenizer.encode("Hello"), SamplingParams(**params))
    return SequenceState(
        request,
        max_tokens=params.pop("max_tokens", 40),
        tokenizer=tokenizer,
        token_texts=TokenTextCache(tokenizer),
        vocab_size=len(tokenizer),
        eos_token_ids={tokenizer.eos_token_id},
        grammar=grammar,
    )


def run_steps(seq: SequenceState, logits: torch.Tensor) -> tuple[str, list[int]]:
    text, ids = "", []
    while not seq.finished:
        delta = seq.step(logits).delta
        text, ids = text + delta.text, ids + delta.token_ids
    return text, ids


def test_the_grammar_ends_the_sequence_despite_ignore_eos_and_min_tokens(
    tokenizer: Any, yes_no: Grammar
) -> None:
    eos = tokenizer.eos_token_id
    logits = torch.zeros(len(tokenizer))
    logits[eos] = 100.0  # the model wants to stop at once: the grammar holds EOS back
    seq = sequence(tokenizer, yes_no, temperature=0, ignore_eos=True, min_tokens=30)
    text, ids = run_steps(seq, logits)
    assert json.loads(text) in ("yes", "no")
    assert ids[-1] == eos and seq.finish_reason == "stop"
    free = sequence(tokenizer, None, temperature=0, ignore_eos=True, max_tokens=5)
    assert run_steps(free, logits)[1] == [eos] * 5  # without a grammar, ignore_eos holds


def test_max_tokens_before_completion_is_length_with_the_partial_text(
    tokenizer: Any, yes_no: Grammar
) -> None:
    seq = sequence(tokenizer, yes_no, temperature=0, max_tokens=1)
    text, ids = run_steps(seq, torch.zeros(len(tokenizer)))
    assert seq.finish_reason == "length" and len(ids) == 1
    assert '"yes"'.startswith(text.strip()) or '"no"'.startswith(text.strip())


def test_a_mask_that_leaves_nothing_ends_the_sequence_cleanly(
    tokenizer: Any, yes_no: Grammar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GrammarMatcher, "mask", lambda self, logits: None)
    seq = sequence(tokenizer, yes_no, temperature=0.7, seed=1)
    result = seq.step(torch.zeros(len(tokenizer)))
    assert result.finished and result.delta.finish_reason == "stop"
    assert result.delta.token_ids == []
    assert result.delta.prompt_tokens == len(seq.request.prompt_token_ids)


def test_a_token_outside_the_grammar_fails_the_sequence(tokenizer: Any, yes_no: Grammar) -> None:
    seq = sequence(tokenizer, yes_no)
    with pytest.raises(HFRuntimeError, match="does not follow the grammar"):
        seq.append(SampledToken(tokenizer.encode("x")[0]))


def test_sampled_rows_follow_the_grammar_and_logprobs_are_renormalised(
    tokenizer: Any, yes_no: Grammar
) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(len(tokenizer), generator=generator) * 3
    for seed in range(5):
        seq = sequence(tokenizer, yes_no, temperature=1.0, seed=seed, logprobs=3)
        text, ids = "", []
        while not seq.finished:
            delta = seq.step(logits).delta
            text, ids = text + delta.text, ids + delta.token_ids
            assert delta.logprobs is not None
            for logprob in delta.logprobs:  # over the allowed tokens only
                assert logprob.logprob > -1e9
        assert json.loads(text) in ("yes", "no")
