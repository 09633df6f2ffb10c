"""The run's Markdown summary (what run.py prints and writes to latest.md, the README's table)."""

from __future__ import annotations

from typing import Any

from benchmarks.reports.cells import fmt as _fmt
from benchmarks.reports.cells import row as _row
from benchmarks.reports.encoder import encoder_markdown
from benchmarks.reports.generation import generation_markdown
from benchmarks.reports.paired import paired_markdown
from benchmarks.reports.prefix_cache import prefix_cache_markdown
from benchmarks.reports.routes import routes_markdown


def _machine_line(machine: dict[str, Any]) -> str:
    return (
        f"**Machine:** {machine['cpu_model']}, {machine['cpu_count']} cores "
        f"({machine['usable_cores']} usable), torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, transformers {machine['transformers']}, "
        f"bentoml {machine['bentoml']}; load average at start {machine['load_avg_at_start']}. "
        "Load generator and servers share this machine."
    )


def markdown(results: dict[str, Any]) -> str:
    lines = ["### Throughput benchmark (`make bench`)", "", _machine_line(results["machine"])]
    if results.get("encoder"):
        lines += encoder_markdown(results["encoder"])
    if results.get("generation"):
        lines += generation_markdown(results["generation"])
    if results.get("prefix_cache"):
        lines += prefix_cache_markdown(results["prefix_cache"])
    lines += paired_markdown([
        *(results.get("encoder") or {}).get("paired", []),
        *(results.get("generation") or {}).get("paired", []),
    ])  # fmt: skip
    lines += routes_markdown((results.get("encoder") or {}).get("routes", []))
    if results.get("targets"):
        lines += ["", "| target | wanted | measured | met |", "|---|---|---:|---|"]
        for t in results["targets"]:
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(_row(t["target"], t["wanted"], _fmt(t["measured"], 2), met))
    return "\n".join(lines) + "\n"
