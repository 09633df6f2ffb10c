"""The prefix-cache benchmark phase, on the tiny GPT-2 (no timing asserted: its rows and
table are checked; `python -m benchmarks.prefix_cache` measures SmolLM2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.phases.prefix_cache import rounds, system_prompt
from benchmarks.reports.prefix_cache import markdown, prefix_cache_target
from hf_runtime.backends.huggingface.prefix_cache import PrefixCacheSettings
from tests.backends.huggingface.test_generation_engine import _load, make_engine


def test_paired_rounds_reuse_the_shared_prefix_and_render(tiny_models: dict[str, Path]) -> None:
    loaded = _load(tiny_models["gpt2-chat"], seq2seq=False)
    tokenizer = loaded.tokenizer
    assert abs(len(tokenizer.encode(system_prompt(tokenizer, 120, "x"))) - 120) < 60
    on = make_engine(loaded, max_model_len=512, prefix_cache=PrefixCacheSettings(1 << 24, 16))
    off = make_engine(loaded, max_model_len=512)
    try:
        result = asyncio.run(rounds(tokenizer, on, off, prefix_tokens=120, count=2))
    finally:
        on.close()
        off.close()
    assert len(result["rounds"]) == 2
    for row in result["rounds"]:
        assert row["warm_reused_tokens"] >= 112  # the shared system prompt, in whole blocks
        assert 0 < row["cold_store_s"] < row["cold_s"]  # the cold prompt's blocks were stored
    assert result["cache"]["prefix_cache_hits"] > 0
    table = markdown({**result, "machine": {}})
    assert "| round | prompt tokens | reused |" in table and "Median warm / cold" in table
    target = prefix_cache_target(result)
    assert target["measured"] == result["warm_to_cold_median"] and target["wanted"] == "<= 0.3x"
