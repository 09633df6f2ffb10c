"""xgrammar vs llguidance vs outlines-core on one tokenizer and the same JSON schemas.

For each engine: the one-off tokenizer setup, the compile time of each schema (cold: nothing
cached), and the per-token mask time while walking the tokens of one valid instance of the
schema (the same token ids for every engine; a fresh matcher per walk). Only the bitmask
computation is timed (what each engine does per decoding step); applying it to the logits is
the same for all of them. Used by `python -m benchmarks.structured`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# (name, schema, one valid instance). Keys of each instance in sorted order: the schema text
# is canonical (sorted keys), and the engines keep the declared property order.
SCHEMAS: list[tuple[str, dict[str, Any], Any]] = [
    (
        "person",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "email": {"type": "string", "format": "email"},
            },
            "required": ["name", "age", "email"],
        },
        {"age": 42, "email": "ada@example.com", "name": "Ada Lovelace"},
    ),
    (
        "tool-call",
        {
            "type": "object",
            "properties": {
                "name": {"const": "get_weather"},
                "arguments": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"enum": ["celsius", "fahrenheit"]},
                        "days": {"type": "integer"},
                    },
                    "required": ["city", "unit", "days"],
                },
            },
            "required": ["name", "arguments"],
        },
        {"arguments": {"city": "Paris", "days": 3, "unit": "celsius"}, "name": "get_weather"},
    ),
    (
        "nested-array",
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}},
                            "score": {"type": "number"},
                        },
                        "required": ["id", "tags", "score"],
                    },
                }
            },
            "required": ["items"],
        },
        {"items": [{"id": i, "score": i / 4, "tags": ["a", "c"]} for i in range(4)]},
    ),
]


def canonical(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def instance_ids(tokenizer: Any, instance: Any) -> list[int]:
    return list(tokenizer.encode(json.dumps(instance, sort_keys=True), add_special_tokens=False))


class _Engine:
    name = ""

    def setup(self, tokenizer: Any, vocab_size: int, eos: int) -> None: ...

    def compile(self, schema: str) -> Any: ...

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        """Seconds per mask over the walk (the mask before each token, then the final one)."""
        raise NotImplementedError


class _XGrammar(_Engine):
    name = "xgrammar 0.2.8"

    def setup(self, tokenizer: Any, vocab_size: int, eos: int) -> None:
        from hf_runtime.decoding.grammar import build_xgrammar_compiler

        self.compiler = build_xgrammar_compiler(tokenizer, vocab_size, [eos])
        self.vocab_size = vocab_size

    def compile(self, schema: str) -> Any:
        return self.compiler.compile_json_schema(schema, any_whitespace=True)

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        import xgrammar

        matcher = xgrammar.GrammarMatcher(compiled)
        bitmask = xgrammar.allocate_token_bitmask(1, self.vocab_size)
        return _timed_walk(
            ids, lambda: matcher.fill_next_token_bitmask(bitmask), matcher.accept_token
        )


class _LLGuidance(_Engine):
    name = "llguidance"

    def setup(self, tokenizer: Any, vocab_size: int, eos: int) -> None:
        import llguidance.hf

        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)
        self.vocab_size = vocab_size

    def compile(self, schema: str) -> Any:
        import llguidance

        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": True}
        )
        matcher = llguidance.LLMatcher(self.tokenizer, grammar)  # checks the grammar
        if matcher.is_error():
            raise RuntimeError(matcher.get_error())
        return grammar

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        import llguidance
        import llguidance.numpy

        matcher = llguidance.LLMatcher(self.tokenizer, compiled)
        bitmask = llguidance.numpy.allocate_token_bitmask(1, self.vocab_size)
        return _timed_walk(
            ids,
            lambda: llguidance.numpy.fill_next_token_bitmask(matcher, bitmask),
            matcher.consume_token,
        )


class _OutlinesCore(_Engine):
    name = "outlines-core 0.2.14"

    def setup(self, tokenizer: Any, vocab_size: int, eos: int) -> None:
        import outlines_core

        self.vocabulary = outlines_core.Vocabulary(eos, _byte_vocabulary(tokenizer, eos))
        self.vocab_size = vocab_size

    def compile(self, schema: str) -> Any:
        import outlines_core

        regex = outlines_core.json_schema.build_regex_from_schema(schema)
        return outlines_core.Index(regex, self.vocabulary)

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        import outlines_core

        guide = outlines_core.Guide(compiled)
        bitmask = np.zeros((self.vocab_size + 31) // 32, dtype=np.int32)
        ptr, size = bitmask.ctypes.data, bitmask.size
        return _timed_walk(
            ids, lambda: guide.write_mask_into(ptr, size, 4), lambda t: guide.advance(t)
        )


def _byte_vocabulary(tokenizer: Any, eos: int) -> dict[bytes, list[int]]:
    """Token bytes -> ids for a byte-level BPE tokenizer (GPT-2 style: SmolLM2's)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    unicode_to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    vocabulary: dict[bytes, list[int]] = {}
    for token, index in tokenizer.get_vocab().items():
        if index == eos or index in special:
            continue
        try:
            raw = bytes(unicode_to_byte[char] for char in token)
        except KeyError:  # an added token outside the byte alphabet
            raw = token.encode()
        vocabulary.setdefault(raw, []).append(index)
    return vocabulary


def _timed_walk(
    ids: list[int], fill: Callable[[], Any], accept: Callable[[int], Any]
) -> list[float]:
    times = []
    for token in ids:
        start = time.perf_counter()
        fill()
        times.append(time.perf_counter() - start)
        if accept(token) is False:
            raise RuntimeError(f"token {token} rejected")
    start = time.perf_counter()
    fill()
    times.append(time.perf_counter() - start)
    return times


ENGINES: tuple[type[_Engine], ...] = (_XGrammar, _LLGuidance, _OutlinesCore)


def compare(tokenizer: Any, vocab_size: int, eos: int, *, repeats: int = 3) -> list[dict]:
    """One row per (engine, schema): setup, cold compile and mask times (ms / µs)."""
    rows = []
    for engine_class in ENGINES:
        engine = engine_class()
        start = time.perf_counter()
        engine.setup(tokenizer, vocab_size, eos)
        setup_s = time.perf_counter() - start
        for name, schema, instance in SCHEMAS:
            text, ids = canonical(schema), instance_ids(tokenizer, instance)
            row: dict[str, Any] = {"engine": engine.name, "schema": name, "tokens": len(ids)}
            row["setup_ms"] = round(setup_s * 1e3, 1)
            try:
                compiles, masks = [], []
                for _ in range(repeats):
                    start = time.perf_counter()
                    compiled = engine.compile(text)
                    compiles.append(time.perf_counter() - start)
                    masks.extend(engine.walk(compiled, ids))
                row["compile_ms"] = round(statistics.median(compiles) * 1e3, 2)
                row["mask_us_mean"] = round(statistics.fmean(masks) * 1e6, 1)
                row["mask_us_p50"] = round(statistics.median(masks) * 1e6, 1)
                row["mask_us_max"] = round(max(masks) * 1e6, 1)
            except Exception as exc:  # an engine that cannot do a schema is a finding
                row["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
            rows.append(row)
    return rows
