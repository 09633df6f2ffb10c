"""The paired rounds' results (phases/rounds.py) as targets and a Markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def paired_targets(paired: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "target": f"{row['target']} (paired, median of {len(row['ratios'])})",
            "wanted": f">= {row['goal']}x",
            "measured": row["median"],
            "met": row["met"],
            "replaces": row["target"],
        }  # fmt: skip
        for row in paired
    ]


def paired_markdown(paired: Sequence[dict[str, Any]]) -> list[str]:
    if not paired:
        return []
    lines = [
        "",
        "#### Paired rounds (both sides up at once, measured in alternating windows)",
        "",
        "| ours | theirs | at | metric | ours per round | theirs per round | ratio per round "
        "| median |",
        "|---|---|---:|---|---|---|---|---:|",
    ]
    for row in paired:
        at = row.get("concurrency", row.get("streams", ""))
        at = f"c={at}" if "concurrency" in row else f"{at} streams"
        lines.append(
            f"| {row['ours']} | {row['theirs']} | {at} | {row['metric']} "
            f"| {', '.join(map(str, row['ours_values']))} "
            f"| {', '.join(map(str, row['theirs_values']))} "
            f"| {', '.join(map(str, row['ratios']))} | {row['median']} |"
        )
    lines += [
        "",
        "Ratios are ours / theirs (theirs / ours for TTFT), so above 1 means hf-runtime ahead.",
    ]
    return lines
