"""The issue's targets from a results dict: sequential ratios, replaced by paired medians where
both sides were measured in alternating windows.
"""

from __future__ import annotations

from typing import Any

from benchmarks.core.names import BASELINE, HF_RUNTIME, HF_RUNTIME_BEFORE
from benchmarks.reports.encoder import level_at, ratio_of, run_named
from benchmarks.reports.generation import generation_targets
from benchmarks.reports.paired import paired_targets
from benchmarks.reports.prefix_cache import prefix_cache_target
from benchmarks.reports.routes import routes_targets

LATENCY_BUDGET_MS = 3.0  # concurrency-1 p50 may exceed a raw single forward by this much


def _target(name: str, wanted: str, measured: float | None, met: bool | None) -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "measured": measured, "met": met}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for the first dtype measured (the default float32 run)."""
    targets: list[dict[str, Any]] = []
    encoder = results.get("encoder") or {}
    ceilings = encoder.get("ceiling", {})
    if ceilings:
        dtype = next(iter(ceilings))
        ceiling = ceilings[dtype]
        ours = run_named(encoder.get("runs", []), HF_RUNTIME, dtype) or {}
        baseline = run_named(encoder.get("runs", []), BASELINE, dtype) or {}
        top = max((lv["concurrency"] for lv in ours.get("levels", [])), default=None)
        if top is not None:
            rps = (level_at(ours, top) or {}).get("throughput_rps")
            vs_ceiling = ratio_of(rps, ceiling.get("best_sentences_per_s"))
            vs_baseline = ratio_of(rps, (level_at(baseline, top) or {}).get("throughput_rps"))
            targets.append(
                _target(
                    f"c={top} throughput vs ceiling ({dtype})",
                    ">= 0.8x",
                    vs_ceiling,
                    None if vs_ceiling is None else vs_ceiling >= 0.8,
                )
            )
            targets.append(
                _target(
                    f"c={top} throughput vs baseline ({dtype})",
                    ">= 5x",
                    vs_baseline,
                    None if vs_baseline is None else vs_baseline >= 5,
                )
            )
        single = ceiling.get("single_forward_p50_ms")
        one = level_at(ours, 1)
        if one is not None and single is not None:
            budget = single + LATENCY_BUDGET_MS
            targets.append(
                _target(
                    f"c=1 p50 latency, ms ({dtype})",
                    f"<= {budget:.1f} (forward {single:.1f} + 3)",
                    one["p50_ms"],
                    one["p50_ms"] <= budget,
                )
            )
        before = run_named(encoder.get("runs", []), HF_RUNTIME_BEFORE, dtype) or {}
        if top is not None and level_at(before, top):
            before_rps = level_at(before, top)["throughput_rps"]
            was = ratio_of(before_rps, ceiling.get("best_sentences_per_s"))
            targets.append(
                _target(
                    f"c={top} throughput vs ceiling, before ({dtype})",
                    ">= 0.8x",
                    was,
                    None if was is None else was >= 0.8,
                )
            )
        for row in encoder.get("floor") or []:
            if row["server"] == "floor-bentoml-fast-path":
                share = row["attainable_share_of_ceiling"]
                targets.append(
                    _target(
                        "most of the ceiling the BentoML floor (fast path) leaves",
                        ">= 0.8x",
                        share,
                        None if share is None else share >= 0.8,
                    )
                )
    if results.get("generation"):
        targets += generation_targets(results["generation"])
    if results.get("prefix_cache"):
        targets.append(prefix_cache_target(results["prefix_cache"]))
    # Where both sides were measured in alternating windows, that median replaces the ratio of
    # two sequential runs (phases/rounds.py says why).
    paired = paired_targets([
        *(results.get("encoder") or {}).get("paired", []),
        *(results.get("generation") or {}).get("paired", []),
    ])  # fmt: skip
    replaced = {row["replaces"] for row in paired}
    routes = routes_targets((results.get("encoder") or {}).get("routes", []))
    return [t for t in targets if t["target"] not in replaced] + paired + routes
