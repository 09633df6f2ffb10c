"""The per-route rows (phases/encoder_routes.py): every encoder route against the ceiling at
the top concurrency and against one forward at concurrency 1, as a table and as targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.reports.cells import fmt, row
from benchmarks.reports.cpu import cpu_markdown

RATIO_GOAL = 0.8  # sentences/s at the top concurrency over the ceiling's best
EXCESS_GOAL_MS = 2.0  # concurrency-1 p50 over one in-process forward of the same sentences


def _values(values: Sequence[Any]) -> str:
    return ", ".join(fmt(v, 2) for v in values)


def routes_markdown(routes: Sequence[dict[str, Any]]) -> list[str]:
    if not routes:
        return []
    lines = [
        "",
        "#### Every encoder route against the ceiling (paired rounds, one hf-runtime server)",
        "",
        "| route | c | sentences/s per round | ceiling per round | ratio per round | median "
        "| server CPU ms/req | c | p50 ms per round | forward ms per round | median excess ms |",
        "|---|---:|---|---|---|---:|---|---:|---|---|---:|",
    ]
    for r in routes:
        top, low = r["top"], r["low"]
        lines.append(row(
            f"{r['route']} ({r['texts']} sentence{'s' if r['texts'] > 1 else ''})",
            top["concurrency"], _values(top["sentences_per_s"]),
            _values(top["ceiling_sentences_per_s"]), _values(top["ratios"]),
            fmt(top["median_ratio"], 2), _values(top["server_cpu_ms_per_request"]),
            low["concurrency"], _values(low["p50_ms"]), _values(low["forward_ms"]),
            fmt(low["median_excess_ms"], 2),
        ))  # fmt: skip
    lines += [
        "",
        "sentences/s: requests/s times the sentences each embeds (a score or rerank pair: two). "
        "The forward: tokenize, forward and pool the same sentences in-process. Server CPU per "
        "request: the server's whole process tree over the measured window (warm-up apart).",
        "",
    ]
    lines += cpu_markdown([
        (r["route"], side["concurrency"], side.get("cpu") or [])
        for side_name in ("top", "low") for r in routes for side in [r[side_name]]
    ], what="route")  # fmt: skip
    return lines


def routes_targets(routes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = []
    for r in routes:
        top, low = r["top"], r["low"]
        ratio, excess = top["median_ratio"], low["median_excess_ms"]
        targets.append({
            "target": f"{r['route']}: c={top['concurrency']} sentences/s vs ceiling "
                      f"(paired, median of {len(top['ratios'])})",
            "wanted": f">= {RATIO_GOAL}x", "measured": ratio,
            "met": None if ratio is None else ratio >= RATIO_GOAL,
        })  # fmt: skip
        targets.append({
            "target": f"{r['route']}: c={low['concurrency']} p50 over one forward, ms "
                      f"(paired, median of {len(low['excess_ms'])})",
            "wanted": f"<= {EXCESS_GOAL_MS}", "measured": excess,
            "met": None if excess is None else excess <= EXCESS_GOAL_MS,
        })  # fmt: skip
    return targets
