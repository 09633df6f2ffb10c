"""The generation phase's ratios, targets, Markdown and plot additions (see phases/generation.py).

Every ratio is of two things measured in the same run, minutes apart, on the same machine:
a shared machine skews absolute numbers far more than it skews ratios.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.core.names import HF, HF_BEFORE, VLLM, VLLM_SERVER
from benchmarks.reports.cells import one_line
from benchmarks.reports.cells import row as _row


def _run(generation: dict[str, Any], name: str) -> dict[str, Any]:
    return next((r for r in generation.get("runs", []) if r.get("backend") == name), {})


def _level(run: dict[str, Any], streams: int) -> dict[str, Any]:
    return next((lv for lv in run.get("levels", []) if lv["concurrency"] == streams), {})


def _raw(generation: dict[str, Any], batch: int) -> dict[str, Any]:
    levels = (generation.get("raw_generate") or {}).get("levels", [])
    return next((lv for lv in levels if lv["batch"] == batch), {})


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return None
    return round(numerator / denominator, 2)


def _streams(generation: dict[str, Any]) -> list[int]:
    runs = generation.get("runs", [])
    return sorted({lv["concurrency"] for r in runs for lv in r.get("levels", [])})


def _versus(generation: dict[str, Any], ours: str, other: str) -> list[dict[str, Any]]:
    """Per stream level: our tokens/s over the other's, the other's TTFT p50 and server CPU per
    token over ours (all > 1 when we are faster or cheaper)."""
    mine, theirs = _run(generation, ours), _run(generation, other)
    rows = []
    for streams in _streams(generation):
        a, b = _level(mine, streams), _level(theirs, streams)
        if a and b:
            rows.append({
                "streams": streams,
                "tokens_per_s": _ratio(a.get("tokens_per_s"), b.get("tokens_per_s")),
                "ttft_p50": _ratio(b.get("ttft_p50_ms"), a.get("ttft_p50_ms")),
                "cpu_per_token": _ratio(
                    b.get("server_cpu_ms_per_token"), a.get("server_cpu_ms_per_token")
                ),
            })  # fmt: skip
    return rows


def generation_ratios(generation: dict[str, Any]) -> dict[str, Any]:
    hf = _run(generation, HF)
    names = [r["backend"] for r in generation.get("runs", []) if r.get("levels")]
    vllm_chats = (_run(generation, VLLM).get("short_chats") or {}).get("latency_p50_s")
    return {
        "huggingface_vs_raw_generate": [
            {"streams": b, "batch": b, "ratio": _ratio(
                _level(hf, b).get("tokens_per_s"), _raw(generation, b).get("tokens_per_s"))}
            for b in (1, 8) if _level(hf, b) and _raw(generation, b)
        ],
        # raw generate()'s CPU per token over the whole server's (HTTP included): > 1 cheaper.
        "huggingface_cpu_vs_raw_generate": [
            {"streams": b, "batch": b, "ratio": _ratio(
                _raw(generation, b).get("cpu_ms_per_token"),
                _level(hf, b).get("server_cpu_ms_per_token"))}
            for b in (1, 8) if _level(hf, b) and _raw(generation, b)
        ],
        "streams_8_vs_1": {
            n: _ratio(_level(_run(generation, n), 8).get("tokens_per_s"),
                      _level(_run(generation, n), 1).get("tokens_per_s"))
            for n in names
        },
        "simultaneous_ttft_vs_lone": {
            n: (_run(generation, n).get("simultaneous") or {}).get("ratio_p50_vs_lone")
            for n in names
        },
        "short_chats_p50_vs_vllm": {
            n: _ratio((_run(generation, n).get("short_chats") or {}).get("latency_p50_s"),
                      vllm_chats)
            for n in names if n != VLLM
        },
        "vllm_vs_vllm_server": _versus(generation, VLLM, VLLM_SERVER),
        "huggingface_vs_before": _versus(generation, HF, HF_BEFORE),
    }  # fmt: skip


def _target(name: str, wanted: str, measured: float | None, met: bool | None) -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "measured": measured, "met": met}


def _at_least(name: str, goal: float, measured: float | None) -> dict[str, Any]:
    return _target(name, f">= {goal}x", measured, None if measured is None else measured >= goal)


def _at_most(name: str, goal: float, measured: float | None) -> dict[str, Any]:
    return _target(name, f"<= {goal}x", measured, None if measured is None else measured <= goal)


def generation_targets(generation: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's generation goals, as far as this run measured them."""
    ratios = generation.get("ratios") or generation_ratios(generation)
    targets = [
        _at_least(f"generation tokens/s, 8 streams vs 1 ({name})", 3, scale)
        for name, scale in ratios["streams_8_vs_1"].items()
        if scale is not None
    ]
    goals = {1: 0.9, 8: 1.0}
    for row in ratios["huggingface_vs_raw_generate"]:
        name = (
            f"huggingface tokens/s, {row['streams']} streams vs raw generate() batch {row['batch']}"
        )
        targets.append(_at_least(name, goals[row["batch"]], row["ratio"]))
    burst = ratios["simultaneous_ttft_vs_lone"].get(HF)
    if burst is not None:
        count = (_run(generation, HF).get("simultaneous") or {}).get("requests", 8)
        targets.append(_at_most(f"huggingface TTFT p50, {count} sent at once vs alone", 2, burst))
        # The model's own floor: raw generate()'s prefill of 8 prompts against one. A batched
        # prefill cannot give 8 first tokens sooner than that on a compute-bound CPU.
        prefill = {
            lv["batch"]: lv.get("prefill_ms")
            for lv in (generation.get("raw_generate") or {}).get("levels", [])
        }
        if count == 8 and prefill.get(8) and prefill.get(1):
            floor = prefill[8] / prefill[1]
            targets.append(_at_most(
                f"huggingface TTFT p50, 8 at once vs alone, over raw generate()'s prefill "
                f"batch 8 / batch 1 ({floor:.1f}x)", 1.0, round(burst / floor, 2),
            ))  # fmt: skip
    chats = ratios["short_chats_p50_vs_vllm"].get(HF)
    if chats is not None:
        targets.append(
            _at_most("huggingface short chats p50 latency vs the vllm backend's", 1.25, chats)
        )
    for row in ratios["vllm_vs_vllm_server"]:
        streams = row["streams"]
        targets.append(
            _at_least(
                f"vllm backend tokens/s vs vLLM's server, {streams} streams",
                0.95,
                row["tokens_per_s"],
            )
        )
        targets.append(
            _at_least(
                f"vllm backend TTFT vs vLLM's server (theirs / ours), {streams} streams",
                0.95,
                row["ttft_p50"],
            )
        )
    return targets  # fmt: skip


def generation_markdown(generation: dict[str, Any]) -> list[str]:
    settings = generation.get("settings", {})
    lines = [
        "",
        f"#### Generation: SmolLM2-135M-Instruct, streaming `POST /v1/chat/completions`, "
        f"max_tokens {settings.get('max_tokens')}, temperature 0, ignore_eos"
        + (f", max_num_seqs {settings['max_num_seqs']}" if "max_num_seqs" in settings else ""),
        "",
        "| backend | streams | tokens/s | TTFT p50 ms | TTFT p99 ms | server CPU ms/token "
        "| streams done | errors | cut off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in generation.get("runs", []):
        if run.get("skipped") or run.get("error"):
            reason = run.get("skipped") or f"failed: {one_line(run['error'])}"
            lines.append(_row(run["backend"], "-", reason, "", "", "", "", "", ""))
            continue
        for level in run["levels"]:
            cells = [level.get(k) for k in (
                "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "server_cpu_ms_per_token", "streams",
            )]  # fmt: skip
            lines.append(_row(run["backend"], level["concurrency"], *cells, level["errors"],
                              level["cut_off"]))  # fmt: skip
    raw = generation.get("raw_generate") or {}
    if raw.get("levels"):
        lines += [
            "",
            f"Raw transformers `generate()` (static batch, same prompts and dtype, "
            f"{raw.get('max_tokens')} tokens, EOS held off, best of repeats, "
            f"{raw.get('torch_threads')} torch threads):",
            "",
            "| batch | tokens/s | CPU ms/token | prefill only, ms |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            _row(lv["batch"], lv["tokens_per_s"], lv.get("cpu_ms_per_token"), lv["prefill_ms"])
            for lv in raw["levels"]
        ]
    elif raw.get("error"):
        lines += ["", f"Raw `generate()` failed: {one_line(raw['error'])}"]
    scenario_runs = [r for r in generation.get("runs", []) if r.get("simultaneous")]
    if scenario_runs:
        burst = scenario_runs[0]["simultaneous"]["requests"]
        chats = scenario_runs[0].get("short_chats") or {}
        lines += [
            "",
            f"| backend | TTFT alone ms | TTFT, {burst} at once: p50 ms | max ms | p50 / alone "
            f"| {chats.get('chats')} chats x {chats.get('max_tokens')} tokens: p50 s | p99 s "
            "| their TTFT p50 ms | done |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in scenario_runs:
            b, c = run["simultaneous"], run.get("short_chats") or {}
            lines.append(_row(
                run["backend"], b["lone_ttft_ms"], b["simultaneous_ttft_p50_ms"],
                b["simultaneous_ttft_max_ms"], b["ratio_p50_vs_lone"], c.get("latency_p50_s"),
                c.get("latency_p99_s"), c.get("ttft_p50_ms"), c.get("done"),
            ))  # fmt: skip
    ratios = generation.get("ratios") or generation_ratios(generation)
    for key, title in (
        ("huggingface_vs_before", f"{HF} / {HF_BEFORE}"),
        ("vllm_vs_vllm_server", f"{VLLM} backend / {VLLM_SERVER}"),
    ):
        if ratios.get(key):
            header = (
                f"| {title} | streams | tokens/s ratio | TTFT p50 ratio (theirs / ours) "
                "| CPU/token ratio (theirs / ours) |"
            )
            lines += ["", header, "|---|---:|---:|---:|---:|"]
            lines += [
                _row("", r["streams"], r["tokens_per_s"], r["ttft_p50"], r.get("cpu_per_token"))
                for r in ratios[key]
            ]
    return lines


def plot_raw_generate(ax: Any, generation: dict[str, Any]) -> None:
    """Raw generate()'s batch 1 and 8 on the tokens/s-against-streams panel."""
    levels = (generation.get("raw_generate") or {}).get("levels", [])
    if levels:
        ax.plot([lv["batch"] for lv in levels], [lv["tokens_per_s"] for lv in levels],
                marker="s", linestyle="--", color="black",
                label="raw generate(), batch = streams")  # fmt: skip
