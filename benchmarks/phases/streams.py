"""Streaming chat load against one generation server: the stream levels and one paired window."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from benchmarks.core.machine import log
from benchmarks.core.settings import Settings
from benchmarks.core.stats import per_request_ms
from benchmarks.core.workload import CHAT_PATH, chat_stream_body
from benchmarks.loadgen.pyload import run_streams
from benchmarks.phases.rounds import Metrics


async def warm_up_stream(url: str) -> None:
    """One short stream, so that the first measured window does not pay for lazy
    initialisation."""
    warmup = await run_streams(
        url, CHAT_PATH, lambda i: chat_stream_body(i, max_tokens=4), concurrency=1,
        duration_s=0, max_streams=1,
    )  # fmt: skip
    if warmup.errors:
        raise RuntimeError(f"the warm-up stream failed: {warmup.error_samples[0]}")


async def _generation_levels(
    url: str, s: Settings, backend: str, cpu_seconds: Callable[[], float | None] | None = None
) -> list[dict[str, Any]]:
    """Tokens/s and TTFT per stream level; with `cpu_seconds` (the server's CPU time so far),
    also the server's CPU per completion token, which a busy machine skews far less."""

    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=s.max_tokens)

    await warm_up_stream(url)
    levels = []
    for concurrency in s.streams:
        cpu_before = cpu_seconds() if cpu_seconds else None
        result = await run_streams(
            url, CHAT_PATH, body, concurrency=concurrency, duration_s=s.stream_level_s,
            hard_limit_s=s.stream_limit_s,
        )  # fmt: skip
        cpu_after = cpu_seconds() if cpu_seconds else None
        used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        summary = {
            **result.summary(),
            "server_cpu_ms_per_token": per_request_ms(used, result.completion_tokens),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        levels.append(summary)
        log(
            f"  {backend} streams={concurrency}: {summary['tokens_per_s']} tokens/s, "
            f"TTFT p50 {summary['ttft_p50_ms']} ms, errors {summary['errors']}, "
            f"cut off {summary['cut_off']}"
        )
    return levels


def _stream_window(url: str, streams: int, s: Settings) -> Callable[[], Metrics]:
    def measure() -> Metrics:
        result = asyncio.run(run_streams(
            url, CHAT_PATH, lambda i: chat_stream_body(i, max_tokens=s.max_tokens),
            concurrency=streams, duration_s=s.stream_level_s, hard_limit_s=s.stream_limit_s,
        ))  # fmt: skip
        summary = result.summary()
        if summary["errors"]:
            raise RuntimeError(f"{url}: {summary['error_samples'][:1]}")
        return {"tokens_per_s": summary["tokens_per_s"], "ttft_p50_ms": summary["ttft_p50_ms"]}

    return measure
