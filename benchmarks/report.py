"""Turn a results dict (what benchmarks/run.py writes to latest.json) into targets, a Markdown
summary for the README and a throughput plot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

HF_RUNTIME = "hf-runtime"
BASELINE = "baseline"
BENTOML_BATCHING = "bentoml-batching"
BENTOML_BATCHING_DIRECT = "bentoml-batching-direct"  # its /embed endpoint, no proxy
LATENCY_BUDGET_MS = 3.0  # concurrency-1 p50 may exceed a raw single forward by this much


def _level(run: dict[str, Any], concurrency: int) -> dict[str, Any] | None:
    return next((lv for lv in run.get("levels", []) if lv["concurrency"] == concurrency), None)


def _run(runs: list[dict[str, Any]], server: str, dtype: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["server"] == server and r["dtype"] == dtype), None)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def one_line(error: str, limit: int = 160) -> str:
    """An error's first line, safe inside a Markdown table cell."""
    first = next((line.strip() for line in error.splitlines() if line.strip()), "")
    return first.replace("|", "/")[:limit]


def encoder_ratios(encoder: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dtype and concurrency: hf-runtime's throughput over the ceiling's and each other
    server's (`hf_runtime_vs`: server name -> ratio)."""
    rows: list[dict[str, Any]] = []
    runs = encoder.get("runs", [])
    for dtype, ceiling in encoder.get("ceiling", {}).items():
        ours = _run(runs, HF_RUNTIME, dtype)
        if ours is None:
            continue
        others = [r for r in runs if r["dtype"] == dtype and r["server"] != HF_RUNTIME]
        for level in ours.get("levels", []):
            c = level["concurrency"]
            rps = level["throughput_rps"]
            versus = {
                other["server"]: _ratio(rps, (_level(other, c) or {}).get("throughput_rps"))
                for other in others
            }
            rows.append({
                "dtype": dtype,
                "concurrency": c,
                "hf_runtime_vs_ceiling": _ratio(rps, ceiling.get("best_sentences_per_s")),
                "hf_runtime_vs": versus,
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
    for run in (results.get("generation") or {}).get("runs", []):
        one, eight = _level(run, 1), _level(run, 8)
        if one and eight:
            scale = _ratio(eight["tokens_per_s"], one["tokens_per_s"])
            targets.append(
                _target(
                    f"generation tokens/s, 8 streams vs 1 ({run['backend']})",
                    ">= 3x",
                    scale,
                    None if scale is None else scale >= 3,
                )
            )
    return targets


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_fmt(c) for c in cells) + " |"


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
        for run in [r for r in encoder.get("runs", []) if r["dtype"] == dtype]:
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
    diff = encoder.get("dtype_difference")
    if diff:
        lines += [
            "",
            f"bfloat16 vs float32 MiniLM embeddings on {diff['sentences']} sentences: largest "
            f"absolute difference {diff['max_abs_diff']:.2e}, lowest cosine similarity "
            f"{diff['min_cosine_similarity']:.6f}.",
        ]
    return lines


def _generation_markdown(generation: dict[str, Any]) -> list[str]:
    settings = generation.get("settings", {})
    lines = [
        "",
        f"#### Generation: SmolLM2-135M-Instruct, streaming `POST /v1/chat/completions`, "
        f"max_tokens {settings.get('max_tokens')}, temperature 0, ignore_eos",
        "",
        "| backend | streams | tokens/s | TTFT p50 ms | TTFT p95 ms | streams done | errors "
        "| cut off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in generation.get("runs", []):
        if run.get("skipped") or run.get("error"):
            reason = run.get("skipped") or f"failed: {one_line(run['error'])}"
            lines.append(_row(run["backend"], "-", reason, "", "", "", "", ""))
            continue
        for level in run["levels"]:
            cells = [level[k] for k in ("tokens_per_s", "ttft_p50_ms", "ttft_p95_ms", "streams")]
            lines.append(
                _row(
                    run["backend"], level["concurrency"], *cells, level["errors"], level["cut_off"]
                )
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = ["### Throughput benchmark (`make bench`)", "", _machine_line(results["machine"])]
    if results.get("encoder"):
        lines += _encoder_markdown(results["encoder"])
    if results.get("generation"):
        lines += _generation_markdown(results["generation"])
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


def plot(results: dict[str, Any], path: Path) -> None:
    """Encoder throughput against concurrency (and generation tokens/s against streams)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generation_runs = [
        r for r in (results.get("generation") or {}).get("runs", []) if r.get("levels")
    ]
    panels = 2 if generation_runs else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    encoder_ax = axes[0][0]
    encoder = results.get("encoder") or {}
    for index, (dtype, ceiling) in enumerate(encoder.get("ceiling", {}).items()):
        style = ("--", ":", "-.")[index % 3]
        encoder_ax.axhline(
            ceiling["best_sentences_per_s"],
            linestyle=style,
            color="grey",
            label=f"ceiling ({dtype}, batch {ceiling['best_batch_size']})",
        )
    for run in encoder.get("runs", []):
        if not run.get("levels"):
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
        gen_ax = axes[0][1]
        for run in generation_runs:
            xs = [lv["concurrency"] for lv in run["levels"]]
            ys = [lv["tokens_per_s"] for lv in run["levels"]]
            gen_ax.plot(xs, ys, marker="o", label=run["backend"])
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
