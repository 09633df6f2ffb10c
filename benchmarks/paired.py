"""Paired rounds: the issue's ratios, with both sides measured in alternating windows.

A shared virtual machine's speed drifts by tens of percent over minutes (the same raw
`generate()` ran at 47 and 78 tokens/s within one process, minutes apart). Measuring one
server after the other turns that drift into the ratio. Here every side of a comparison is
up at the same time (idle servers cost no CPU) and each round measures each side for one
window, in rotating order; every round gives one ratio per pair and the median round is
reported, with all of them. The sequential runs (phases.py, generation.py) still give the
absolute tables; the targets use these medians where a pair was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks import report
from benchmarks.cload import measure_level
from benchmarks.loadgen import run_streams
from benchmarks.phases import (
    SERVER_START_TIMEOUT_S,
    hf_runtime_encoder_servers,
    log,
    warm_up_stream,
)
from benchmarks.servers import REPO_ROOT, child_env, serve_process
from benchmarks.settings import Settings
from benchmarks.workload import CHAT_PATH, V1_PREDICT_PATH, chat_stream_body, v1_predict_body

Metrics = dict[str, float]


@dataclass(frozen=True)
class Side:
    name: str
    measure: Callable[[], Metrics]  # one window


@dataclass(frozen=True)
class Pair:
    """`ours` against `theirs` on `metric`; ratios are ours / theirs, or theirs / ours when
    lower is better, so that above 1 always means hf-runtime is ahead."""

    ours: str
    theirs: str
    metric: str
    target: str  # the evaluate_targets name this pair's median replaces
    goal: float  # the median must reach it
    lower_is_better: bool = False


def alternate(sides: Sequence[Side], rounds: int) -> dict[str, list[Metrics]]:
    """Each side's metrics per round; round r starts at side r (mod len), so no side is
    always the first one after a pause."""
    values: dict[str, list[Metrics]] = {side.name: [] for side in sides}
    for index in range(rounds):
        shift = index % len(sides)
        for side in [*sides[shift:], *sides[:shift]]:
            values[side.name].append(side.measure())
        log(f"  paired round {index + 1}: " + "; ".join(
            f"{name} {values[name][-1]}" for name in values
        ))  # fmt: skip
    return values


def summarize(pair: Pair, values: dict[str, list[Metrics]]) -> dict[str, Any]:
    ours = [m.get(pair.metric) for m in values[pair.ours]]
    theirs = [m.get(pair.metric) for m in values[pair.theirs]]
    ratios = [
        round((b / a) if pair.lower_is_better else (a / b), 3)
        for a, b in zip(ours, theirs, strict=True)
        if a and b
    ]
    median = round(statistics.median(ratios), 2) if ratios else None
    return {
        "ours": pair.ours, "theirs": pair.theirs, "metric": pair.metric,
        "ours_values": ours, "theirs_values": theirs, "ratios": ratios, "median": median,
        "target": pair.target, "goal": pair.goal,
        "met": None if median is None else median >= pair.goal,
    }  # fmt: skip


# ---------------------------------------------------------------------- encoder


def encoder_pairs(s: Settings, ceiling: dict[str, Any], dtype: str) -> list[dict[str, Any]]:
    """hf-runtime (and --before's) at the top concurrency against the in-process ceiling at
    its best batch size, in alternating windows."""
    from benchmarks.ceiling import _time_batch
    from benchmarks.minilm import load_minilm
    from benchmarks.workload import minilm_dir, sentence

    top = max(s.concurrencies)
    tokenizer, model = load_minilm(minilm_dir(), dtype)
    batch = [sentence(i) for i in range(ceiling["best_batch_size"])]
    window = s.level_s / s.windows

    def ceiling_window() -> Metrics:
        timings = _time_batch(tokenizer, model, batch, window)
        return {"throughput_rps": round(len(batch) * len(timings) / sum(timings), 2)}

    servers = hf_runtime_encoder_servers(s, dtype, before=True)
    with _all_up(s, servers) as urls:

        def server_window(url: str) -> Callable[[], Metrics]:
            def measure() -> Metrics:
                result = asyncio.run(measure_level(
                    url, V1_PREDICT_PATH, v1_predict_body, concurrency=top, duration_s=window,
                    warmup_s=min(1.0, s.warmup_s), use_c=s.loadgen == "c",
                ))  # fmt: skip
                return {"throughput_rps": result.summary()["throughput_rps"]}

            return measure

        sides = [Side("ceiling", ceiling_window)]
        sides += [Side(name, server_window(url)) for name, url in urls.items()]
        values = alternate(sides, s.paired_rounds)
    pairs = [Pair(report.HF_RUNTIME, "ceiling", "throughput_rps",
                  f"c={top} throughput vs ceiling ({dtype})", 0.8)]  # fmt: skip
    if report.HF_RUNTIME_BEFORE in values:
        pairs.append(Pair(report.HF_RUNTIME_BEFORE, "ceiling", "throughput_rps",
                          f"c={top} throughput vs ceiling, before ({dtype})", 0.8))  # fmt: skip
    return [{**summarize(pair, values), "concurrency": top} for pair in pairs]


class Startable(Protocol):
    """What _all_up needs of phases.EncoderServer and generation.GenerationServer (frozen
    dataclasses, hence read-only here)."""

    @property
    def name(self) -> str: ...
    @property
    def command(self) -> Callable[[int], list[str]]: ...
    @property
    def env(self) -> dict[str, str]: ...
    @property
    def fail_marker(self) -> str | None: ...
    @property
    def cwd(self) -> Path | None: ...
    @property
    def ready_path(self) -> str: ...


@contextlib.contextmanager
def _all_up(
    s: Settings, servers: Sequence[Startable], warm: Callable[[str], object] | None = None
) -> Iterator[dict[str, str]]:
    """Every server started and ready (then `warm(url)` once), name -> URL; all stopped after."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for server in servers:
            running = stack.enter_context(serve_process(
                server.command, log_path=s.out_dir / "logs.tmp" / f"paired-{server.name}.log",
                env=server.env, ready_path=server.ready_path, ready_timeout=SERVER_START_TIMEOUT_S,
                fail_marker=server.fail_marker, cwd=server.cwd,
            ))  # fmt: skip
            if warm is not None:
                warm(running.url)
            urls[server.name] = running.url
        started = time.monotonic()
        yield urls
        log(f"  paired rounds took {time.monotonic() - started:.0f} s")


# ---------------------------------------------------------------------- generation


@contextlib.contextmanager
def raw_generate_process(model_dir: Path, max_tokens: int) -> Iterator[Callable[[int], Metrics]]:
    """`python -m benchmarks.generation raw-serve`: generate(batch) on call, model loaded once."""
    command = [
        sys.executable, "-m", "benchmarks.generation", "raw-serve", "--model-dir", str(model_dir),
        "--max-tokens", str(max_tokens),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def answer() -> dict[str, Any]:
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"raw generate() process exited ({process.poll()})")
        return dict(json.loads(line))

    def generate(batch: int) -> Metrics:
        stdin.write(f"{batch}\n")
        stdin.flush()
        return {"tokens_per_s": float(answer()["tokens_per_s"])}

    try:
        answer()  # {"ready": true}
        yield generate
    finally:
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _stream_window(url: str, streams: int, s: Settings) -> Callable[[], Metrics]:
    def measure() -> Metrics:
        result = asyncio.run(run_streams(
            url, CHAT_PATH, lambda i: chat_stream_body(i, max_tokens=s.max_tokens),
            concurrency=streams, duration_s=s.stream_level_s, hard_limit_s=s.stream_limit_s,
        ))  # fmt: skip
        summary = result.summary()
        if summary["errors"]:
            raise RuntimeError(f"{url}: {summary['error_samples'][:1]}")
        return {"tokens_per_s": summary["tokens_per_s"], "ttft_p50_ms": summary["ttft_p50_ms"]}

    return measure


def _one_short_stream(url: str) -> None:
    asyncio.run(warm_up_stream(url))


def generation_pairs(s: Settings, servers: Sequence[Any], model_dir: Path) -> list[dict[str, Any]]:
    """huggingface at 1 and 8 streams against raw generate() at batch 1 and 8; the vllm
    backend against vLLM's own server at every --streams. `servers`: generation.py's
    GenerationServers of this run (the huggingface, vllm and vllm-server ones are used)."""
    from benchmarks.generation import VLLM_SERVER

    by_name = {server.name: server for server in servers}
    results: list[dict[str, Any]] = []
    if "huggingface" in by_name:
        log("generation: paired rounds, huggingface vs raw generate()")
        with (
            _all_up(s, [by_name["huggingface"]], _one_short_stream) as urls,
            raw_generate_process(model_dir, s.max_tokens) as generate,
        ):
            for streams in (1, 8):
                sides = [
                    Side("huggingface", _stream_window(urls["huggingface"], streams, s)),
                    Side("raw", lambda n=streams: generate(n)),
                ]
                values = alternate(sides, s.paired_rounds)
                goal = 0.9 if streams == 1 else 1.0
                name = f"huggingface tokens/s, {streams} streams vs raw generate() batch {streams}"
                pair = Pair("huggingface", "raw", "tokens_per_s", name, goal)
                results.append({**summarize(pair, values), "streams": streams})
    if "vllm" in by_name and VLLM_SERVER in by_name:
        log("generation: paired rounds, vllm backend vs vLLM's server")
        with _all_up(s, [by_name["vllm"], by_name[VLLM_SERVER]], _one_short_stream) as urls:
            for streams in s.streams:
                sides = [Side(name, _stream_window(url, streams, s)) for name, url in urls.items()]
                values = alternate(sides, s.paired_rounds)
                for pair in (
                    Pair("vllm", VLLM_SERVER, "tokens_per_s",
                         f"vllm backend tokens/s vs vLLM's server, {streams} streams", 0.95),
                    Pair("vllm", VLLM_SERVER, "ttft_p50_ms",
                         f"vllm backend TTFT vs vLLM's server (theirs / ours), {streams} streams",
                         0.95, lower_is_better=True),
                ):  # fmt: skip
                    results.append({**summarize(pair, values), "streams": streams})
    return results
