"""The run's plot (throughput.png): encoder throughput and latency against concurrency, and
generation tokens/s against streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.core.names import FLOOR_RUNS
from benchmarks.reports.generation import plot_raw_generate


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
