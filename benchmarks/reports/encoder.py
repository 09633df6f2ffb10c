"""The encoder phase's ratios and Markdown (see phases/encoder.py): hf-runtime against the
in-process ceiling and every other server, and the HTTP floors.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.core.names import (
    BENTOML_BATCHING,
    BENTOML_BATCHING_DIRECT,
    FLOOR_RUNS,
    HF_RUNTIME,
)
from benchmarks.reports.breakdown import breakdown_markdown
from benchmarks.reports.cells import fmt as _fmt
from benchmarks.reports.cells import one_line
from benchmarks.reports.cells import row as _row


def level_at(run: dict[str, Any], concurrency: int) -> dict[str, Any] | None:
    return next((lv for lv in run.get("levels", []) if lv["concurrency"] == concurrency), None)


def run_named(runs: list[dict[str, Any]], server: str, dtype: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["server"] == server and r["dtype"] == dtype), None)


def ratio_of(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def ceiling_at(ceiling: dict[str, Any], batch: float | None) -> float | None:
    """The ceiling's sentences/s at a batch size between two measured ones (linear in the
    batch's log2), from its sweep; None outside the sweep."""
    sweep = sorted((lv["batch_size"], lv["sentences_per_s"]) for lv in ceiling.get("sweep", []))
    if batch is None or not sweep or not sweep[0][0] <= batch <= sweep[-1][0]:
        return None
    for (b0, r0), (b1, r1) in zip(sweep, sweep[1:], strict=False):
        if b0 <= batch <= b1:
            w = 0.0 if b1 == b0 else (math.log2(batch) - math.log2(b0)) / math.log2(b1 / b0)
            return round(r0 + w * (r1 - r0), 2)
    return round(sweep[0][1], 2)


def encoder_ratios(encoder: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dtype and concurrency: hf-runtime's throughput over the ceiling's and each other
    server's (`hf_runtime_vs`: server name -> ratio)."""
    rows: list[dict[str, Any]] = []
    runs = encoder.get("runs", [])
    for dtype, ceiling in encoder.get("ceiling", {}).items():
        ours = run_named(runs, HF_RUNTIME, dtype)
        if ours is None:
            continue
        others = [
            r for r in runs
            if r["dtype"] == dtype and r["server"] != HF_RUNTIME and r["server"] not in FLOOR_RUNS
        ]  # fmt: skip
        for level in ours.get("levels", []):
            c = level["concurrency"]
            rps = level["throughput_rps"]
            versus = {
                other["server"]: ratio_of(rps, (level_at(other, c) or {}).get("throughput_rps"))
                for other in others
            }
            at_batch = ceiling_at(ceiling, level.get("mean_batch"))
            rows.append({
                "dtype": dtype,
                "concurrency": c,
                "hf_runtime_vs_ceiling": ratio_of(rps, ceiling.get("best_sentences_per_s")),
                # Against what the model does at the batch size the server really formed.
                "mean_batch": level.get("mean_batch"),
                "ceiling_at_mean_batch": at_batch,
                "hf_runtime_vs_ceiling_at_mean_batch": ratio_of(rps, at_batch),
                "hf_runtime_vs": versus,
            })  # fmt: skip
    return rows


def attainable_share(floor_rps: float | None, ceiling_rps: float | None) -> float | None:
    """The largest fraction of the ceiling a server with this floor can reach: a request costs
    the floor's CPU plus the model's, so floor / (floor + ceiling) (see peers/floor.py)."""
    if not floor_rps or not ceiling_rps:
        return None
    return round(floor_rps / (floor_rps + ceiling_rps), 3)


def floor_summary(encoder: dict[str, Any]) -> list[dict[str, Any]]:
    """Per floor run, at its highest concurrency: req/s, server CPU per request, and the most
    of the (first dtype's) ceiling a server with that floor could reach:
    floor / (floor + ceiling), as both spend the same cores (see peers/floor.py)."""
    ceilings = encoder.get("ceiling", {})
    ceiling = ceilings[next(iter(ceilings))].get("best_sentences_per_s") if ceilings else None
    rows = []
    for run in encoder.get("runs", []):
        if run["server"] not in FLOOR_RUNS or not run.get("levels"):
            continue
        top = max(run["levels"], key=lambda level: level["concurrency"])
        rows.append({
            "server": run["server"],
            "concurrency": top["concurrency"],
            "throughput_rps": top["throughput_rps"],
            "server_cpu_ms_per_request": top.get("server_cpu_ms_per_request"),
            "attainable_share_of_ceiling": attainable_share(top["throughput_rps"], ceiling),
        })  # fmt: skip
    return rows


def encoder_markdown(encoder: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    ratios = {(r["dtype"], r["concurrency"]): r for r in encoder_ratios(encoder)}
    for dtype, ceiling in encoder.get("ceiling", {}).items():
        lines += [
            "",
            f"#### Encoder: all-MiniLM-L6-v2, {dtype}, one short sentence per KServe V1 request",
            "",
            f"Ceiling (in-process tokenize + forward + pool, no HTTP): "
            f"**{_fmt(ceiling['best_sentences_per_s'])} sentences/s** at batch "
            f"{ceiling['best_batch_size']}; one sentence alone: "
            f"{_fmt(ceiling['single_forward_p50_ms'], 2)} ms (p50). At best, "
            f"{_fmt(1000 * ceiling['torch_threads'] / ceiling['best_sentences_per_s'], 2)} "
            "ms of CPU per sentence (its torch threads busy throughout).",
            "",
            "| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors "
            "| server CPU ms/req | client CPU ms/req | hf-runtime / this |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        runs = encoder.get("runs", [])
        for run in [r for r in runs if r["dtype"] == dtype and r["server"] not in FLOOR_RUNS]:
            if run.get("error") and not run.get("levels"):
                failed = f"failed: {one_line(run['error'])}"
                lines.append(_row(run["server"], "-", failed, *[""] * 7))
                continue
            for level in run["levels"]:
                versus = ratios.get((dtype, level["concurrency"]), {}).get("hf_runtime_vs", {})
                cells = [
                    level.get(k)
                    for k in (
                        "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "errors",
                        "server_cpu_ms_per_request", "client_cpu_ms_per_request",
                    )
                ]  # fmt: skip
                ratio = _fmt(versus.get(run["server"]), 2) if run["server"] != HF_RUNTIME else ""
                lines.append(_row(run["server"], level["concurrency"], *cells, ratio))
        vs_ceiling = [
            f"c={c}: {_fmt(r['hf_runtime_vs_ceiling'], 2)}x"
            for (d, c), r in ratios.items()
            if d == dtype and r["hf_runtime_vs_ceiling"] is not None
        ]
        if vs_ceiling:
            lines += ["", "hf-runtime / ceiling: " + ", ".join(vs_ceiling) + "."]
        at_batch = [
            f"c={c}: mean batch {_fmt(r['mean_batch'], 1)}, ceiling there "
            f"{_fmt(r['ceiling_at_mean_batch'])}/s, hf-runtime / that "
            f"{_fmt(r['hf_runtime_vs_ceiling_at_mean_batch'], 2)}x"
            for (d, c), r in ratios.items()
            if d == dtype and r.get("hf_runtime_vs_ceiling_at_mean_batch") is not None
        ]
        if at_batch:
            lines += [
                "",
                "The batches hf-runtime formed (from its /metrics) and the ceiling at that batch "
                "size: " + "; ".join(at_batch) + ".",
            ]
        if any(
            r["server"] == BENTOML_BATCHING_DIRECT and r["dtype"] == dtype
            for r in encoder.get("runs", [])
        ):
            lines += [
                "",
                f"{BENTOML_BATCHING}: MiniLM behind `@bentoml.api(batchable=True)`, called from "
                f"a V1 route through `self.to_async`; {BENTOML_BATCHING_DIRECT}: the same "
                "process's batchable `/embed` endpoint called directly (no in-process proxy).",
            ]
    lines += _floor_markdown(encoder)
    lines += breakdown_markdown(encoder.get("breakdown") or {})
    diff = encoder.get("dtype_difference")
    if diff:
        lines += [
            "",
            f"bfloat16 vs float32 MiniLM embeddings on {diff['sentences']} sentences: largest "
            f"absolute difference {diff['max_abs_diff']:.2e}, lowest cosine similarity "
            f"{diff['min_cosine_similarity']:.6f}.",
        ]
    return lines


def _floor_markdown(encoder: dict[str, Any]) -> list[str]:
    floor_runs = [r for r in encoder.get("runs", []) if r["server"] in FLOOR_RUNS]
    if not floor_runs:
        return []
    shares = {row["server"]: row for row in encoder.get("floor") or floor_summary(encoder)}
    lines = [
        "",
        "#### HTTP floor: a trivial route (no model), same request and load generator",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| client CPU ms/req | most of the ceiling it leaves |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in floor_runs:
        if run.get("error") and not run.get("levels"):
            lines.append(_row(run["server"], "-", f"failed: {one_line(run['error'])}", *[""] * 5))
            continue
        top = max(level["concurrency"] for level in run["levels"])
        for level in run["levels"]:
            share = shares.get(run["server"], {}).get("attainable_share_of_ceiling")
            cells = [level.get(k) for k in (
                "throughput_rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request",
                "client_cpu_ms_per_request",
            )]  # fmt: skip
            shown = _fmt(share, 2) + "x" if level["concurrency"] == top and share else ""
            lines.append(_row(run["server"], level["concurrency"], *cells, shown))
    lines += [
        "",
        "floor-bentoml: the route mounted in `bentoml serve`; -gateway: with hf-runtime's "
        "gateway; -fast-path: with the gateway and its BentoML fast path (hf_runtime.fast_path)."
        " A request costs the floor's CPU plus the model's, so a server with that floor reaches "
        "at most floor / (floor + ceiling) of the ceiling.",
    ]
    return lines
