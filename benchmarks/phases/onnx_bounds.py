"""What a server with no per-request cost could reach here: the zero-overhead bounds.

At the top concurrency the paired rounds (phases/onnx_paired.py) also time, in this process
and in the same rotation as the servers, onnxruntime's and torch's forward at their best batch
(tokenize, forward, pool, as the backends run it; no HTTP, no batcher): sentences/s and the
process CPU per sentence. Per round, that throughput over Infinity's is the ratio a server
with no per-request cost at all could reach against Infinity on this machine; and each
server's CPU per request (core/thread_cpu.py) against the in-process compute per sentence
says how much of a served request is not the model.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.core.workload import minilm_dir, sentence
from benchmarks.phases.onnx_inprocess import load_encoder, run_batch
from benchmarks.phases.rounds import Metrics, Side

INPROCESS = {"in-process onnxruntime": "onnxruntime", "in-process torch": "huggingface"}
DEFAULT_BATCH = 32  # the best batch of both on MiniLM here, when no in-process run says


def best_batches(inprocess: dict[str, Any] | None) -> dict[str, int]:
    """Each in-process side's best batch size from onnx_inprocess's speed rows (torch float32
    ms per batch, onnxruntime float32's speed-up over it), else DEFAULT_BATCH."""
    rows = (inprocess or {}).get("speed", {}).get("rows") or []
    if not rows:
        return dict.fromkeys(INPROCESS, DEFAULT_BATCH)

    def best(speedup_of: Callable[[dict[str, Any]], float]) -> int:
        rate = {r["batch_size"]: r["batch_size"] * speedup_of(r) / r["float32_ms"] for r in rows}
        return max(rate, key=lambda size: rate[size])

    return {
        "in-process onnxruntime": best(lambda r: r["speedup"].get("onnxruntime float32", 0.0)),
        "in-process torch": best(lambda r: 1.0),
    }


def inprocess_sides(window: float, batches: dict[str, int]) -> list[Side]:
    sides = []
    for name, backend in INPROCESS.items():
        encoder = load_encoder(minilm_dir(), "text_embedding", backend, {})
        batch = [sentence(i) for i in range(batches[name])]
        run_batch(encoder, batch, True)  # warm this shape

        def measure(encoder: Any = encoder, batch: list[str] = batch) -> Metrics:
            done, cpu, started = 0, time.process_time(), time.perf_counter()
            while time.perf_counter() - started < window:
                run_batch(encoder, batch, True)
                done += len(batch)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            return {
                "throughput_rps": round(done / wall, 2), "batch_size": len(batch),
                "cpu_ms_per_sentence": round(1000 * cpu / done, 3),
            }  # fmt: skip

        sides.append(Side(name, measure))
    return sides


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def bounds(values: dict[str, list[Metrics]], infinity: str) -> dict[str, Any]:
    """Per in-process side: its throughput over Infinity's per round (the bound), and per
    server: its CPU per request against the in-process compute per sentence."""
    out: dict[str, Any] = {"vs_infinity": {}, "servers": {}}
    for name in INPROCESS:
        if name in values and infinity in values:
            ratios = [
                round(a["throughput_rps"] / b["throughput_rps"], 3)
                for a, b in zip(values[name], values[infinity], strict=True)
                if b.get("throughput_rps")
            ]
            out["vs_infinity"][name] = {"ratios": ratios, "median": _median(ratios)}
    compute = values.get("in-process onnxruntime") or []
    compute_ms = _median([m["cpu_ms_per_sentence"] for m in compute])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out["cores"], out["onnxruntime_compute_ms_per_sentence"] = cores, compute_ms
    for name, windows in values.items():
        if name in INPROCESS:
            continue
        rps = _median([m["throughput_rps"] for m in windows])
        server = _median([m["cpu"]["server_ms"] for m in windows if m.get("cpu")])
        client = _median([m["cpu"]["client_ms"] for m in windows if m.get("cpu")
                          and m["cpu"].get("client_ms") is not None]) or 0.0  # fmt: skip
        if rps is None or server is None:
            continue
        cpu_bound_rps = 1000 * (cores or 1) / (server + client)
        out["servers"][name] = {
            "throughput_rps": rps, "server_cpu_ms": server, "client_cpu_ms": client,
            "beyond_compute_ms": None if compute_ms is None else round(server - compute_ms, 2),
            "cpu_bound_rps": round(cpu_bound_rps, 1),
            "served_over_cpu_bound": round(rps / cpu_bound_rps, 2),
        }  # fmt: skip
    return out


def markdown(result: dict[str, Any], top: int) -> list[str]:
    lines = []
    for name, bound in result["vs_infinity"].items():
        rounds = ", ".join(f"{r:.2f}" for r in bound["ratios"])
        lines.append(f"- Zero-overhead bound, {name} best batch / Infinity c={top}: "
                     f"**{bound['median']}x** (per round {rounds})")  # fmt: skip
    compute = result["onnxruntime_compute_ms_per_sentence"]
    if not result["servers"]:
        return lines
    lines += [
        "",
        f"Served CPU against the in-process compute (c={top}; onnxruntime's forward at its best "
        f"batch costs {compute} ms of CPU per sentence in this process; {result['cores']} cores):",
        "",
        "| server | req/s | server CPU ms/req | client ms/req | beyond compute ms/req "
        "| cores / (server + client CPU) req/s | served / that |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["servers"].items():
        lines.append(
            f"| {name} | {s['throughput_rps']} | {s['server_cpu_ms']} | {s['client_cpu_ms']} "
            f"| {s['beyond_compute_ms']} | {s['cpu_bound_rps']} | {s['served_over_cpu_bound']} |"
        )
    lines += [
        "",
        "Beyond compute: the server's CPU per request minus onnxruntime's in-process compute per "
        "sentence (for the torch servers it includes torch's slower forward). Served / that "
        "near 1 means the cores were the limit: only less CPU per request raises throughput.",
    ]
    return lines
