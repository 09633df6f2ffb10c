"""The CPU-per-request rows: where a served request's CPU goes, per server and concurrency
(core/thread_cpu.py's breakdowns, one per measured window; the median of each column)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.reports.cells import fmt, row

COLUMNS = ("event_loop_ms", "inference_ms", "compute_pool_ms", "other_ms", "server_ms",
           "client_ms", "idle_pct")  # fmt: skip


def median_breakdown(windows: Sequence[dict[str, Any] | None]) -> dict[str, float | None]:
    """Each column's median over the windows that have it."""
    out: dict[str, float | None] = {}
    for column in COLUMNS:
        values = [w[column] for w in windows if w and w.get(column) is not None]
        out[column] = round(statistics.median(values), 3) if values else None
    return out


def cpu_row(label: str, concurrency: int, windows: Sequence[dict[str, Any] | None]) -> str:
    m = median_breakdown(windows)
    return row(
        label, concurrency, *(fmt(m[c], 2) for c in COLUMNS[:-1]), fmt(m["idle_pct"], 0),
        len([w for w in windows if w]),
    )  # fmt: skip


def cpu_markdown(
    rows: Sequence[tuple[str, int, Sequence[dict[str, Any] | None]]], what: str = "server"
) -> list[str]:
    """`rows`: (`what`: the server or route, concurrency, its windows' breakdowns); rows
    without any breakdown (results from before them) are left out."""
    rows = [r for r in rows if any(r[2])]
    if not rows:
        return []
    lines = [
        "CPU ms per request by thread role (median over the windows; the server's threads "
        "sampled from /proc before and after each window):",
        "",
        f"| {what} | c | event loop | inference thread | compute pool | other | server total "
        "| client | idle % | windows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [cpu_row(label, concurrency, windows) for label, concurrency, windows in rows]
    lines += [
        "",
        "Event loop: the serving process's main thread; inference thread: the batcher's "
        "(hf-runtime-infer*); compute pool: the native threads Python did not start (ONNX "
        "Runtime's, OpenMP's and the tokenizer's pools; the inference thread computes a share "
        "of the model too, as ONNX Runtime's and OpenMP's calling thread, and a spinning pool "
        "counts as busy); other: the server's other Python threads and "
        "processes (BentoML's arbiter); Infinity's inference threads: its batch handler's "
        "thread pool; client: the load generator's own CPU; idle: "
        "the machine's, over the window (others' work included on a shared machine).",
    ]
    return lines
