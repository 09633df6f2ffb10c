"""The two measured phases: encoder throughput and streaming generation.

Each server is started, checked for a correct answer, loaded at every level and stopped; a
server that fails to start or answers wrongly is recorded with its error and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import report
from benchmarks.cload import measure_level
from benchmarks.floor import TRIVIAL_PATH
from benchmarks.loadgen import BodyFactory, run_streams
from benchmarks.servers import (
    RunningServer,
    baseline_command,
    bentoml_batching_command,
    config_subset,
    floor_bentoml_command,
    floor_uvicorn_command,
    hf_runtime_command,
    serve_process,
    source_tree,
)
from benchmarks.settings import Settings
from benchmarks.workload import (
    BENTOML_EMBED_PATH,
    CHAT_PATH,
    ENCODER_MODEL_NAME,
    V1_PREDICT_PATH,
    bentoml_embed_body,
    chat_stream_body,
    minilm_dir,
    sentence,
    v1_predict_body,
)

SERVER_START_TIMEOUT_S = 600.0  # the first start converts SmolLM2's GGUF to safetensors
# hf-runtime keeps serving (503) when a model fails to load; its log says so at once.
HF_RUNTIME_LOAD_FAILED = "failed to load"
# The encoder runs measure HTTP; a gRPC port would also collide between servers of one run.
NO_GRPC = {"HF_RUNTIME_GRPC_PORT": "0"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Route:
    """One way to ask a server for an embedding; each route measured becomes one run."""

    server: str  # the run's name in the results
    path: str
    body: BodyFactory
    # The embedding of sentence(0) in an answer; None: nothing to check (the HTTP floor).
    first_vector: Callable[[Any], list[float]] | None


def v1_route(server: str) -> Route:
    return Route(server, V1_PREDICT_PATH, v1_predict_body, lambda body: body["predictions"][0])


@dataclass(frozen=True)
class EncoderServer:
    name: str
    command: Callable[[int], list[str]]
    routes: tuple[Route, ...]
    env: dict[str, str] = field(default_factory=dict)
    fail_marker: str | None = None
    cwd: Path | None = None  # the source tree it runs from (None: this one)
    concurrencies: tuple[int, ...] | None = None  # None: every --concurrency
    ready_path: str = "/readyz"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    return dot / norms if norms else 0.0


def check_answer(url: str, route: Route, reference: Sequence[float]) -> float | None:
    """The server must embed sentence(0) as MiniLM does in-process; returns the cosine (None
    for a route with nothing to check, which must still answer 200)."""
    response = httpx.post(
        url + route.path, content=route.body(0), timeout=120,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    response.raise_for_status()
    if route.first_vector is None:
        return None
    vector = route.first_vector(response.json())
    if len(vector) != len(reference):
        raise ValueError(f"expected a {len(reference)}-float embedding, got {len(vector)} values")
    cosine = _cosine(vector, reference)
    if cosine < 0.99:
        raise ValueError(f"the server's embedding is not MiniLM's (cosine {cosine:.4f})")
    return cosine


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


def _per_request_ms(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else round(1000 * seconds / max(1, requests), 3)


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
                "server_cpu_ms_per_request": _per_request_ms(used, result.requests + result.errors),
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
        log(f"  {runs[measuring]['server']} failed: {report.one_line(error, 300)}")
    return runs


def _encoder_servers(s: Settings, dtype: str, main_dtype: bool) -> list[EncoderServer]:
    servers: list[EncoderServer] = []
    if main_dtype:  # the per-request and BentoML comparisons run at the first dtype only
        servers.append(
            EncoderServer(report.BASELINE, baseline_command(dtype), (v1_route(report.BASELINE),))
        )
        if "bentoml-batching" in s.variants:
            # Its V1 route (through self.to_async) and, in the same process, BentoML's own
            # batchable endpoint called directly: the second isolates the batching itself.
            embed_route = Route(
                report.BENTOML_BATCHING_DIRECT, BENTOML_EMBED_PATH, bentoml_embed_body,
                lambda body: body[0],
            )  # fmt: skip
            servers.append(EncoderServer(
                report.BENTOML_BATCHING, bentoml_batching_command(),
                (v1_route(report.BENTOML_BATCHING), embed_route), env={"BENCH_DTYPE": dtype},
            ))  # fmt: skip
    servers += hf_runtime_encoder_servers(s, dtype, before=main_dtype and bool(s.before))
    if main_dtype and s.floor:
        servers += _floor_servers(s)
    return servers


def hf_runtime_encoder_servers(s: Settings, dtype: str, *, before: bool) -> list[EncoderServer]:
    """hf-runtime serving MiniLM, and with `before` the same from --before's commit."""
    # MiniLM alone: the encoder runs need nothing else, and the config a --before commit reads
    # must not hold keys that commit does not know (the other models' newer settings).
    minilm = config_subset(s.config, [ENCODER_MODEL_NAME], s.out_dir / "logs.tmp" / "minilm.yaml")
    servers = [EncoderServer(
        report.HF_RUNTIME, hf_runtime_command(minilm), (v1_route(report.HF_RUNTIME),),
        env={"HF_RUNTIME_DTYPE": dtype, **NO_GRPC}, fail_marker=HF_RUNTIME_LOAD_FAILED,
    )]  # fmt: skip
    if before and s.before:
        # The same server from another commit: before/after measured by the same load
        # generator on the same machine within minutes.
        tree = source_tree(s.before, s.out_dir / "before.tmp")
        servers.append(EncoderServer(
            report.HF_RUNTIME_BEFORE, hf_runtime_command(minilm),
            (v1_route(report.HF_RUNTIME_BEFORE),), cwd=tree, fail_marker=HF_RUNTIME_LOAD_FAILED,
            env={"HF_RUNTIME_DTYPE": dtype, "PYTHONPATH": str(tree), **NO_GRPC},
        ))  # fmt: skip
    return servers


def _floor_servers(s: Settings) -> list[EncoderServer]:
    """The trivial route (benchmarks/floor.py) in bare uvicorn and in bentoml serve, at the
    lowest and highest concurrency."""
    levels = tuple(sorted({min(s.concurrencies), max(s.concurrencies)}))

    def route(name: str) -> tuple[Route, ...]:
        return (Route(name, TRIVIAL_PATH, v1_predict_body, None),)

    servers = [
        EncoderServer(report.FLOOR_UVICORN, floor_uvicorn_command(), route(report.FLOOR_UVICORN),
                      concurrencies=levels),
    ]  # fmt: skip
    for name, mode in report.FLOOR_BENTOML_MODES.items():
        servers.append(EncoderServer(
            name, floor_bentoml_command(), route(name), env={"BENCH_FLOOR_MODE": mode},
            concurrencies=levels,
        ))  # fmt: skip
    return servers


def encoder_phase(s: Settings) -> dict[str, Any]:
    from benchmarks.ceiling import bf16_vs_fp32_difference, measure_ceiling
    from benchmarks.minilm import embed, load_minilm

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
        for server in _encoder_servers(s, dtype, main_dtype=index == 0):
            result["runs"] += measure_encoder_server(server, dtype, s, reference)
    result["ratios"] = report.encoder_ratios(result)
    result["floor"] = report.floor_summary(result)
    if s.paired_rounds:
        from benchmarks.paired import encoder_pairs

        dtype = s.dtypes[0]
        log(f"encoder: paired rounds, hf-runtime vs the ceiling ({dtype})")
        try:
            result["paired"] = encoder_pairs(s, result["ceiling"][dtype], dtype)
        except (RuntimeError, ValueError, httpx.HTTPError) as exc:
            result["paired_error"] = f"{type(exc).__name__}: {exc}"[:3000]
            log(f"  paired rounds failed: {report.one_line(result['paired_error'], 300)}")
    if s.breakdown:
        result["breakdown"] = cpu_breakdown(s)
    return result


def cpu_breakdown(s: Settings) -> dict[str, Any]:
    """CPU per request, in-process: each BentoML middleware (benchmarks/asgi_costs.py), and
    hf-runtime's own path (benchmarks/path_profile.py) for this tree and --before's."""
    from benchmarks.asgi_costs import measure_all
    from benchmarks.path_profile import run_profile

    log("encoder: CPU per request of each BentoML middleware (in-process)")
    breakdown: dict[str, Any] = {"bentoml_middlewares": measure_all(calls=2000, repeats=2)}
    log(f"  {breakdown['bentoml_middlewares']['middleware_cost_us']}")
    subset = config_subset(s.config, [ENCODER_MODEL_NAME], s.out_dir / "logs.tmp" / "minilm.yaml")
    trees: dict[str, Path | None] = {report.HF_RUNTIME: None}
    if s.before:
        trees[report.HF_RUNTIME_BEFORE] = source_tree(s.before, s.out_dir / "before.tmp")
    breakdown["own_path"] = {}
    for name, tree in trees.items():
        log(f"encoder: CPU per request of {name}'s own path (in-process, no HTTP)")
        try:
            profile = run_profile(subset, tree)
        except (RuntimeError, ValueError, OSError) as exc:
            profile = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        breakdown["own_path"][name] = profile
        log(f"  {profile.get('cpu_us_per_request', profile.get('error'))}")
    return breakdown


async def warm_up_stream(url: str) -> None:
    """One short stream, so that the first measured window does not pay for lazy
    initialisation."""
    warmup = await run_streams(
        url, CHAT_PATH, lambda i: chat_stream_body(i, max_tokens=4), concurrency=1,
        duration_s=0, max_streams=1,
    )  # fmt: skip
    if warmup.errors:
        raise RuntimeError(f"the warm-up stream failed: {warmup.error_samples[0]}")


async def _generation_levels(
    url: str, s: Settings, backend: str, cpu_seconds: Callable[[], float | None] | None = None
) -> list[dict[str, Any]]:
    """Tokens/s and TTFT per stream level; with `cpu_seconds` (the server's CPU time so far),
    also the server's CPU per completion token, which a busy machine skews far less."""

    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=s.max_tokens)

    await warm_up_stream(url)
    levels = []
    for concurrency in s.streams:
        cpu_before = cpu_seconds() if cpu_seconds else None
        result = await run_streams(
            url, CHAT_PATH, body, concurrency=concurrency, duration_s=s.stream_level_s,
            hard_limit_s=s.stream_limit_s,
        )  # fmt: skip
        cpu_after = cpu_seconds() if cpu_seconds else None
        used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        summary = {
            **result.summary(),
            "server_cpu_ms_per_token": _per_request_ms(used, result.completion_tokens),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        levels.append(summary)
        log(
            f"  {backend} streams={concurrency}: {summary['tokens_per_s']} tokens/s, "
            f"TTFT p50 {summary['ttft_p50_ms']} ms, errors {summary['errors']}, "
            f"cut off {summary['cut_off']}"
        )
    return levels


def generation_phase(s: Settings) -> dict[str, Any]:
    """Every generation server, raw generate() and vLLM's own server: benchmarks/generation.py."""
    from benchmarks.generation import generation_phase as measure_generation

    return measure_generation(s)
