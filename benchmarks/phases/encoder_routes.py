"""Every encoder route against the ceiling, in paired rounds: V1 predict, OpenAI embeddings
(both prefixes), V2 infer (REST JSON), score and rerank, all on one hf-runtime server.

At the top concurrency each route's sentences/s (requests/s times the sentences a request
embeds: a score or rerank pair embeds two) is set against the in-process ceiling at its best
batch size; at concurrency 1 each route's p50 latency against one in-process forward of the
same sentences (tokenize, forward, pool), as the excess in ms. Both sides of each comparison
are measured in the same round (phases/rounds.py says why); the server's CPU per request, by
thread role (loadgen/cpu_window.py), comes with every window. With --before, that commit's
server answers the same routes beside ours.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from benchmarks.core.machine import log
from benchmarks.core.settings import Settings
from benchmarks.core.workload import minilm_dir, sentence
from benchmarks.loadgen.cpu_window import measure_with_cpu
from benchmarks.loadgen.pyload import percentile
from benchmarks.peers.ceiling import time_batch
from benchmarks.peers.minilm import load_minilm
from benchmarks.peers.servers import RunningServer
from benchmarks.phases.encoder_servers import (
    Route,
    check_answer,
    hf_runtime_encoder_servers,
    hf_runtime_routes,
)
from benchmarks.phases.rounds import Metrics, Side, all_running, alternate

CEILING = "ceiling"


def route_rounds(
    s: Settings, ceiling: dict[str, Any], dtype: str, reference: Sequence[float]
) -> list[dict[str, Any]]:
    """One row per route (and per --before route): its paired ratio to the ceiling at the top
    concurrency and its excess over one forward at the lowest."""
    tokenizer, model = load_minilm(minilm_dir(), dtype)
    window = s.level_s / s.windows
    servers = [
        replace(server, routes=hf_runtime_routes(server.name))
        for server in hf_runtime_encoder_servers(s, dtype, before=True)
    ]
    top, low = max(s.concurrencies), min(s.concurrencies)
    rows: dict[str, dict[str, Any]] = {}
    with all_running(s, servers) as running:
        routes = [(running[server.name], route) for server in servers for route in server.routes]
        for up, route in routes:
            check_answer(up.url, route, reference)
            rows[route.server] = {"route": route.server, "path": route.path, "texts": route.texts}

        def best_batch() -> Metrics:
            batch = [sentence(i) for i in range(ceiling["best_batch_size"])]
            timings = time_batch(tokenizer, model, batch, window)
            return {"sentences_per_s": round(len(batch) * len(timings) / sum(timings), 2)}

        def one_forward() -> Metrics:
            # The forward a c=1 request needs: one sentence, or the two of a pair.
            return {
                f"forward_ms_{n}": round(1000 * percentile(
                    time_batch(tokenizer, model, [sentence(i) for i in range(n)], window / 2), 50
                ), 2)
                for n in (1, 2)
            }  # fmt: skip

        log(f"encoder: every route vs the ceiling, c={top} ({dtype})")
        at_top = alternate(
            [Side(CEILING, best_batch), *_sides(routes, top, window, s)], s.paired_rounds
        )
        log(f"encoder: every route vs one forward, c={low} ({dtype})")
        at_low = alternate(
            [Side(CEILING, one_forward), *_sides(routes, low, window, s)], s.paired_rounds
        )
    for name, row in rows.items():
        row["top"] = _versus_ceiling(at_top[name], at_top[CEILING], top, row["texts"])
        row["low"] = _versus_forward(at_low[name], at_low[CEILING], low, row["texts"])
    return list(rows.values())


def _sides(
    routes: Sequence[tuple[RunningServer, Route]], concurrency: int, window: float, s: Settings
) -> list[Side]:
    def measure(up: RunningServer, route: Route) -> Callable[[], Metrics]:
        def one_window() -> Metrics:
            result, cpu = measure_with_cpu(
                up.pid, up.thread_names_dir, up.url, route.path, route.body,
                concurrency=concurrency, duration_s=window, warmup_s=min(1.0, s.warmup_s),
                use_c=s.loadgen == "c",
            )  # fmt: skip
            if result["errors"]:
                raise RuntimeError(f"{route.server}: {result['error_samples'][:1]}")
            return {
                "sentences_per_s": round(result["throughput_rps"] * route.texts, 2),
                "p50_ms": result["p50_ms"],
                "server_cpu_ms_per_request": cpu["server_ms"],
                "cpu": cpu,
            }

        return one_window

    return [Side(route.server, measure(up, route)) for up, route in routes]


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _versus_ceiling(
    ours: Sequence[Metrics], ceiling: Sequence[Metrics], concurrency: int, texts: int
) -> dict[str, Any]:
    ratios = [
        round(o["sentences_per_s"] / c["sentences_per_s"], 3)
        for o, c in zip(ours, ceiling, strict=True)
        if o.get("sentences_per_s") and c.get("sentences_per_s")
    ]
    return {
        "concurrency": concurrency, "texts": texts,
        "sentences_per_s": [o["sentences_per_s"] for o in ours],
        "ceiling_sentences_per_s": [c["sentences_per_s"] for c in ceiling],
        "server_cpu_ms_per_request": [o.get("server_cpu_ms_per_request") for o in ours],
        "cpu": [o.get("cpu") for o in ours],
        "ratios": ratios, "median_ratio": _median(ratios),
    }  # fmt: skip


def _versus_forward(
    ours: Sequence[Metrics], ceiling: Sequence[Metrics], concurrency: int, texts: int
) -> dict[str, Any]:
    forward = [c[f"forward_ms_{texts}"] for c in ceiling]
    excess = [round(o["p50_ms"] - f, 2) for o, f in zip(ours, forward, strict=True)]
    return {
        "concurrency": concurrency, "texts": texts, "p50_ms": [o["p50_ms"] for o in ours],
        "forward_ms": forward, "excess_ms": excess, "median_excess_ms": _median(excess),
        "server_cpu_ms_per_request": [o.get("server_cpu_ms_per_request") for o in ours],
        "cpu": [o.get("cpu") for o in ours],
    }  # fmt: skip
