"""Turn a results dict (what benchmarks/run.py writes to latest.json) into targets, a Markdown
summary for the README and a throughput plot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.cells import fmt as _fmt
from benchmarks.cells import one_line
from benchmarks.cells import row as _row
from benchmarks.generation_report import (
    generation_markdown,
    generation_targets,
    plot_raw_generate,
)
from benchmarks.paired_report import paired_markdown, paired_targets

HF_RUNTIME = "hf-runtime"
HF_RUNTIME_BEFORE = "hf-runtime-before"  # the same server from --before's git ref
BASELINE = "baseline"
BENTOML_BATCHING = "bentoml-batching"
BENTOML_BATCHING_DIRECT = "bentoml-batching-direct"  # its /embed endpoint, no proxy
LATENCY_BUDGET_MS = 3.0  # concurrency-1 p50 may exceed a raw single forward by this much
# The HTTP floor (benchmarks/floor.py): a trivial route, bare and in bentoml serve.
FLOOR_UVICORN = "floor-uvicorn"
FLOOR_BENTOML_MODES = {  # run name -> BENCH_FLOOR_MODE
    "floor-bentoml": "bentoml",
    "floor-bentoml-gateway": "gateway",
    "floor-bentoml-fast-path": "fast-path",
}
FLOOR_RUNS = (FLOOR_UVICORN, *FLOOR_BENTOML_MODES)


def _level(run: dict[str, Any], concurrency: int) -> dict[str, Any] | None:
    return next((lv for lv in run.get("levels", []) if lv["concurrency"] == concurrency), None)


def _run(runs: list[dict[str, Any]], server: str, dtype: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["server"] == server and r["dtype"] == dtype), None)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
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
        ours = _run(runs, HF_RUNTIME, dtype)
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
                other["server"]: _ratio(rps, (_level(other, c) or {}).get("throughput_rps"))
                for other in others
            }
            at_batch = ceiling_at(ceiling, level.get("mean_batch"))
            rows.append({
                "dtype": dtype,
                "concurrency": c,
                "hf_runtime_vs_ceiling": _ratio(rps, ceiling.get("best_sentences_per_s")),
                # Against what the model does at the batch size the server really formed.
                "mean_batch": level.get("mean_batch"),
                "ceiling_at_mean_batch": at_batch,
                "hf_runtime_vs_ceiling_at_mean_batch": _ratio(rps, at_batch),
                "hf_runtime_vs": versus,
            })  # fmt: skip
    return rows


def floor_summary(encoder: dict[str, Any]) -> list[dict[str, Any]]:
    """Per floor run, at its highest concurrency: req/s, server CPU per request, and the most
    of the (first dtype's) ceiling a server with that floor could reach:
    floor / (floor + ceiling), as both spend the same cores (see benchmarks/floor.py)."""
    from benchmarks.floor import attainable_share

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
        ours = _run(encoder.get("runs", []), HF_RUNTIME, dtype) or {}
        baseline = _run(encoder.get("runs", []), BASELINE, dtype) or {}
        top = max((lv["concurrency"] for lv in ours.get("levels", [])), default=None)
        if top is not None:
            rps = (_level(ours, top) or {}).get("throughput_rps")
            vs_ceiling = _ratio(rps, ceiling.get("best_sentences_per_s"))
            vs_baseline = _ratio(rps, (_level(baseline, top) or {}).get("throughput_rps"))
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
        one = _level(ours, 1)
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
        before = _run(encoder.get("runs", []), HF_RUNTIME_BEFORE, dtype) or {}
        if top is not None and _level(before, top):
            was = _ratio(_level(before, top)["throughput_rps"], ceiling.get("best_sentences_per_s"))
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
    # Where both sides were measured in alternating windows, that median replaces the ratio of
    # two sequential runs (benchmarks/paired.py says why).
    paired = paired_targets([
        *(results.get("encoder") or {}).get("paired", []),
        *(results.get("generation") or {}).get("paired", []),
    ])  # fmt: skip
    replaced = {row["replaces"] for row in paired}
    return [t for t in targets if t["target"] not in replaced] + paired


def _machine_line(machine: dict[str, Any]) -> str:
    return (
        f"**Machine:** {machine['cpu_model']}, {machine['cpu_count']} cores "
        f"({machine['usable_cores']} usable), torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, transformers {machine['transformers']}, "
        f"bentoml {machine['bentoml']}; load average at start {machine['load_avg_at_start']}. "
        "Load generator and servers share this machine."
    )


def _encoder_markdown(encoder: dict[str, Any]) -> list[str]:
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
    lines += _breakdown_markdown(encoder.get("breakdown") or {})
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


def _breakdown_markdown(breakdown: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    middlewares = breakdown.get("bentoml_middlewares") or {}
    if middlewares.get("cpu_us_per_request"):
        lines += [
            "",
            "#### BentoML's per-request CPU, in-process (trivial route, microseconds)",
            "",
            "| app | CPU µs/request | this middleware costs |",
            "|---|---:|---:|",
        ]
        costs = middlewares.get("middleware_cost_us", {})
        for variant, us in middlewares["cpu_us_per_request"].items():
            cost = costs.get(variant[8:]) if variant.startswith("without ") else None
            lines.append(_row(variant, us, cost))
    own = breakdown.get("own_path") or {}
    profiles = {name: p for name, p in own.items() if p.get("cpu_us_per_request")}
    if profiles:
        names = list(profiles)
        categories = list(
            dict.fromkeys(c for p in profiles.values() for c in p["cpu_us_per_request"])
        )
        lines += [
            "",
            "#### hf-runtime's own CPU per V1 request, in-process (no HTTP, no BentoML; "
            "torch 1 thread; microseconds)",
            "",
            "| part | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for category in categories:
            values = [profiles[n]["cpu_us_per_request"].get(category) for n in names]
            lines.append(_row(category, *values))
        lines.append(_row("**total**", *[profiles[n]["cpu_us_per_request_total"] for n in names]))
        # The forward dominates and is the noisiest part on a shared machine: what hf-runtime
        # adds around it is the total without it.
        lines.append(_row("**all but the forward**", *[
            round(profiles[n]["cpu_us_per_request_total"]
                  - profiles[n]["cpu_us_per_request"].get("forward", 0.0), 1)
            for n in names
        ]))  # fmt: skip
        lines.append(
            _row(
                "requests/s in-process", *[profiles[n]["requests_per_s_in_process"] for n in names]
            )
        )
    return lines


def _generation_markdown(generation: dict[str, Any]) -> list[str]:
    return generation_markdown(generation)


def markdown(results: dict[str, Any]) -> str:
    lines = ["### Throughput benchmark (`make bench`)", "", _machine_line(results["machine"])]
    if results.get("encoder"):
        lines += _encoder_markdown(results["encoder"])
    if results.get("generation"):
        lines += _generation_markdown(results["generation"])
    lines += paired_markdown([
        *(results.get("encoder") or {}).get("paired", []),
        *(results.get("generation") or {}).get("paired", []),
    ])  # fmt: skip
    if results.get("targets"):
        lines += ["", "| target | wanted | measured | met |", "|---|---|---:|---|"]
        for t in results["targets"]:
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(_row(t["target"], t["wanted"], _fmt(t["measured"], 2), met))
    return "\n".join(lines) + "\n"


def _concurrency_axis(ax: Any, values: list[int]) -> None:
    """A log2 x axis labelled with the concurrencies measured; y from zero."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(values))
    if ticks:
        ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(bottom=0)


def _latency_panel(ax: Any, encoder: dict[str, Any]) -> None:
    """p50 (solid) and p99 (dashed) latency against concurrency, per encoder run."""
    runs = [r for r in encoder.get("runs", []) if r.get("levels") and r["server"] not in FLOOR_RUNS]
    for index, run in enumerate(runs):
        color = f"C{index % 10}"
        xs = [lv["concurrency"] for lv in run["levels"]]
        label = f"{run['server']} ({run['dtype']})"
        ax.plot(
            xs,
            [lv["p50_ms"] for lv in run["levels"]],
            marker="o",
            color=color,
            label=f"{label} p50",
        )
        ax.plot(xs, [lv["p99_ms"] for lv in run["levels"]], marker="x", linestyle="--",
                color=color, label=f"{label} p99")  # fmt: skip
    ax.set_xscale("log", base=2)
    ticks = sorted({lv["concurrency"] for r in runs for lv in r["levels"]})
    if ticks:
        ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_yscale("log")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title("latency: p50 solid, p99 dashed")
    ax.grid(True, alpha=0.3)
    if runs:
        ax.legend(fontsize=6, ncol=2)


def plot(results: dict[str, Any], path: Path) -> None:
    """Encoder throughput against concurrency (and generation tokens/s against streams)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generation_runs = [
        r for r in (results.get("generation") or {}).get("runs", []) if r.get("levels")
    ]
    panels = 3 if generation_runs else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    encoder_ax = axes[0][0]
    encoder = results.get("encoder") or {}
    _latency_panel(axes[0][1], encoder)
    for index, (dtype, ceiling) in enumerate(encoder.get("ceiling", {}).items()):
        style = ("--", ":", "-.")[index % 3]
        encoder_ax.axhline(
            ceiling["best_sentences_per_s"],
            linestyle=style,
            color="grey",
            label=f"ceiling ({dtype}, batch {ceiling['best_batch_size']})",
        )
    for run in encoder.get("runs", []):
        if not run.get("levels") or run["server"] in FLOOR_RUNS:  # floors: see the table
            continue
        xs = [lv["concurrency"] for lv in run["levels"]]
        ys = [lv["throughput_rps"] for lv in run["levels"]]
        encoder_ax.plot(xs, ys, marker="o", label=f"{run['server']} ({run['dtype']})")
    measured = [lv["concurrency"] for r in encoder.get("runs", []) for lv in r.get("levels", [])]
    _concurrency_axis(encoder_ax, measured)
    encoder_ax.set_xlabel("concurrent requests")
    encoder_ax.set_ylabel("requests/s (one sentence each)")
    encoder_ax.set_title("all-MiniLM-L6-v2, KServe V1 predict")
    encoder_ax.grid(True, alpha=0.3)
    if encoder_ax.get_legend_handles_labels()[0]:
        encoder_ax.legend(fontsize=8)
    if generation_runs:
        gen_ax = axes[0][2]
        for run in generation_runs:
            xs = [lv["concurrency"] for lv in run["levels"]]
            ys = [lv["tokens_per_s"] for lv in run["levels"]]
            gen_ax.plot(xs, ys, marker="o", label=run["backend"])
        plot_raw_generate(gen_ax, results["generation"])
        _concurrency_axis(
            gen_ax, [lv["concurrency"] for r in generation_runs for lv in r["levels"]]
        )
        gen_ax.set_xlabel("concurrent streams")
        gen_ax.set_ylabel("completion tokens/s (all streams)")
        gen_ax.set_title("SmolLM2-135M-Instruct, streaming chat")
        gen_ax.grid(True, alpha=0.3)
        gen_ax.legend(fontsize=8)
    machine = results.get("machine", {})
    fig.suptitle(
        f"{machine.get('cpu_model', '')}, {machine.get('usable_cores', '?')} cores", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
