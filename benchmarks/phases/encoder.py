"""The encoder phase: the in-process ceiling, then every encoder server at every level.

A server that fails to start or answers wrongly is recorded with its error and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx

from benchmarks.core.machine import log
from benchmarks.core.settings import Settings
from benchmarks.core.stats import per_request_ms
from benchmarks.core.workload import minilm_dir, sentence
from benchmarks.loadgen.hfload import measure_level
from benchmarks.peers.servers import SERVER_START_TIMEOUT_S, RunningServer, serve_process
from benchmarks.phases.breakdown import cpu_breakdown
from benchmarks.phases.encoder_paired import encoder_pairs
from benchmarks.phases.encoder_routes import route_rounds
from benchmarks.phases.encoder_servers import EncoderServer, Route, check_answer, encoder_servers
from benchmarks.reports.cells import one_line
from benchmarks.reports.encoder import encoder_ratios, floor_summary


def batcher_counts(url: str) -> tuple[float, float] | None:
    """(forward passes, texts) of hf-runtime's encoder batchers from its /metrics; None for a
    server without them. Their difference over a window gives the mean batch it formed."""
    try:
        return batcher_totals(httpx.get(url + "/metrics", timeout=10).text)
    except httpx.HTTPError:
        return None


def batcher_totals(exposition: str) -> tuple[float, float] | None:
    """hf_runtime_batches_total and hf_runtime_items_total summed over models, from a
    Prometheus text exposition; None when it has neither."""
    totals = {"hf_runtime_batches_total": 0.0, "hf_runtime_items_total": 0.0}
    seen = False
    for line in exposition.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[-1])
            seen = True
    return (totals["hf_runtime_batches_total"], totals["hf_runtime_items_total"]) if seen else None


def _mean_batch(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None or after[0] <= before[0]:
        return None
    return round((after[1] - before[1]) / (after[0] - before[0]), 1)


async def _encoder_levels(
    server: RunningServer, route: Route, s: Settings, concurrencies: Sequence[int]
) -> list[dict[str, Any]]:
    url = server.url
    levels = []
    use_c = s.loadgen == "c"
    for concurrency in concurrencies:
        await measure_level(
            url, route.path, route.body, concurrency=concurrency, duration_s=s.warmup_s,
            use_c=use_c,
        )  # fmt: skip
        windows = []
        for _ in range(s.windows):
            cpu_before = server.cpu_seconds()
            batches_before = await asyncio.to_thread(batcher_counts, url)
            result = await measure_level(
                url, route.path, route.body, concurrency=concurrency,
                duration_s=s.level_s / s.windows, use_c=use_c,
            )  # fmt: skip
            cpu_after = server.cpu_seconds()
            batches_after = await asyncio.to_thread(batcher_counts, url)
            used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            windows.append({
                **result.summary(),
                # Where the CPU goes (set it against the ceiling's CPU per sentence).
                "server_cpu_ms_per_request": per_request_ms(used, result.requests + result.errors),
                # The batches it really formed (hf-runtime only): the ceiling at that size is
                # what the model itself allows at this concurrency.
                "mean_batch": _mean_batch(batches_before, batches_after),
                # Other work on the machine skews the numbers: note how busy it was.
                "load_avg_1m": round(os.getloadavg()[0], 2),
            })  # fmt: skip
        # Other work on a shared machine only ever slows a window down: keep the fastest
        # window's numbers, but never hide an error from any of them.
        summary = max(windows, key=lambda w: w["throughput_rps"])
        summary = {
            **summary,
            "errors": sum(w["errors"] for w in windows),
            "window_rps": [w["throughput_rps"] for w in windows],
        }
        levels.append(summary)
        log(
            f"  {route.server} c={concurrency}: {summary['throughput_rps']} req/s, "
            f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, errors {summary['errors']}"
        )
    return levels


def measure_encoder_server(
    server: EncoderServer, dtype: str, s: Settings, reference: Sequence[float]
) -> list[dict[str, Any]]:
    """One run per route of `server`, all against the same server process."""
    runs: list[dict[str, Any]] = [
        {"server": route.server, "dtype": dtype, "path": route.path, "levels": []}
        for route in server.routes
    ]
    log(f"encoder: starting {server.name} ({dtype})")
    started = time.monotonic()
    measuring = 0  # the run whose route is being checked or loaded
    try:
        with serve_process(
            server.command, log_path=s.out_dir / "logs.tmp" / f"{server.name}-{dtype}.log",
            env=server.env, ready_timeout=SERVER_START_TIMEOUT_S, fail_marker=server.fail_marker,
            cwd=server.cwd,
        ) as running:  # fmt: skip
            start_s = round(time.monotonic() - started, 1)
            for run, route in zip(runs, server.routes, strict=True):
                run["start_s"] = start_s
                cosine = check_answer(running.url, route, reference)
                if cosine is not None:
                    run["answer_cosine_vs_in_process"] = round(cosine, 6)
                concurrencies = server.concurrencies or s.concurrencies
                run["levels"] = asyncio.run(_encoder_levels(running, route, s, concurrencies))
                measuring += 1
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:3000]
        for run in runs[measuring:]:  # this route and the ones never reached
            run["error"] = error
        log(f"  {runs[measuring]['server']} failed: {one_line(error, 300)}")
    return runs


def encoder_phase(s: Settings) -> dict[str, Any]:
    from benchmarks.peers.ceiling import bf16_vs_fp32_difference, measure_ceiling
    from benchmarks.peers.minilm import embed, load_minilm

    model_dir = minilm_dir()
    result: dict[str, Any] = {"model": "all-MiniLM-L6-v2", "ceiling": {}, "runs": []}
    for dtype in s.dtypes:
        log(f"encoder: ceiling ({dtype}), batch sizes 1..128")
        ceiling = measure_ceiling(model_dir, dtype=dtype, seconds_per_size=s.ceiling_s_per_size)
        result["ceiling"][dtype] = ceiling
        log(
            f"  ceiling {dtype}: {ceiling['best_sentences_per_s']} sentences/s at batch "
            f"{ceiling['best_batch_size']}; one sentence {ceiling['single_forward_p50_ms']} ms"
        )
    result["dtype_difference"] = bf16_vs_fp32_difference(model_dir)
    reference = embed(*load_minilm(model_dir, "float32"), [sentence(0)])[0].tolist()
    for index, dtype in enumerate(s.dtypes):
        for server in encoder_servers(s, dtype, main_dtype=index == 0):
            result["runs"] += measure_encoder_server(server, dtype, s, reference)
    result["ratios"] = encoder_ratios(result)
    result["floor"] = floor_summary(result)
    if s.paired_rounds:
        dtype = s.dtypes[0]
        log(f"encoder: paired rounds, hf-runtime vs the ceiling ({dtype})")
        try:
            result["paired"] = encoder_pairs(s, result["ceiling"][dtype], dtype)
        except (RuntimeError, ValueError, httpx.HTTPError) as exc:
            result["paired_error"] = f"{type(exc).__name__}: {exc}"[:3000]
            log(f"  paired rounds failed: {one_line(result['paired_error'], 300)}")
    if s.paired_rounds and s.routes:
        dtype = s.dtypes[0]
        try:
            result["routes"] = route_rounds(s, result["ceiling"][dtype], dtype, reference)
        except (RuntimeError, ValueError, KeyError, httpx.HTTPError) as exc:
            result["routes_error"] = f"{type(exc).__name__}: {exc}"[:3000]
            log(f"  route rounds failed: {one_line(result['routes_error'], 300)}")
    if s.breakdown:
        result["breakdown"] = cpu_breakdown(s)
    return result
