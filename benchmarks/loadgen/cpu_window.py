"""One measured load window with the server's CPU per request broken down by thread role.

The warm-up runs as a load of its own first, so that the measured window (no warm-up of its
own: hfload then counts every request it sends, to the last answer) is exactly what the two
/proc snapshots (core/thread_cpu.py) bracket: CPU per request is then the server's whole
cost per request, not a ratio spoiled by uncounted warm-up requests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from benchmarks.core.thread_cpu import INFERENCE_PREFIXES, breakdown, take_snapshot
from benchmarks.loadgen.hfload import measure_level
from benchmarks.loadgen.pyload import BodyFactory


def measure_with_cpu(
    server_pid: int,
    names_dir: Path | None,
    base_url: str,
    path: str,
    make_body: BodyFactory,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    use_c: bool = True,
    inference_prefixes: tuple[str, ...] = INFERENCE_PREFIXES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the load generator's summary, the CPU breakdown) of one window against the server
    whose process tree starts at `server_pid` (`inference_prefixes`: the names of its
    inference threads)."""
    if warmup_s > 0:
        asyncio.run(measure_level(
            base_url, path, make_body, concurrency=concurrency, duration_s=warmup_s, use_c=use_c
        ))  # fmt: skip
    before = take_snapshot(server_pid, names_dir)
    summary = asyncio.run(measure_level(
        base_url, path, make_body, concurrency=concurrency, duration_s=duration_s, use_c=use_c
    )).summary()  # fmt: skip
    after = take_snapshot(server_pid, names_dir)
    cpu = breakdown(
        before, after, int(summary["requests"]) + int(summary["errors"]),
        client_ms_per_request=summary.get("client_cpu_ms_per_request"),
        inference_prefixes=inference_prefixes,
    )  # fmt: skip
    return summary, cpu
