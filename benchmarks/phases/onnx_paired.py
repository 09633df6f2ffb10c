"""hf-runtime on onnxruntime against Infinity and against hf-runtime on torch, over HTTP.

Three servers up at once, each serving all-MiniLM-L6-v2 from the same folder: hf-runtime with
`backend: onnxruntime`, hf-runtime on the huggingface backend (torch), and Infinity
(peers/infinity.py, its defaults). One short sentence per OpenAI embeddings request (ours:
/v1/embeddings, Infinity's: /embeddings), closed-loop clients. Each round measures every server
for one window at each concurrency, in rotating order (phases/rounds.py); the ratios are per
round and their median is reported. First every server's vectors for the 16 workload sentences
are compared with the torch server's (cosine). Every window also samples the server's threads
(loadgen/cpu_window.py: CPU per request by thread role); at the top concurrency the in-process
forwards run in the same rotation (phases/onnx_bounds.py: the zero-overhead bounds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from benchmarks.core.settings import Settings
from benchmarks.core.thread_cpu import INFERENCE_PREFIXES
from benchmarks.core.workload import ENCODER_MODEL_NAME, SENTENCES, minilm_dir, sentence
from benchmarks.loadgen.cpu_window import measure_with_cpu
from benchmarks.peers import infinity
from benchmarks.peers.servers import (
    HF_RUNTIME_LOAD_FAILED,
    NO_GRPC,
    RunningServer,
    config_subset,
    hf_runtime_command,
)
from benchmarks.phases import onnx_bounds
from benchmarks.phases.rounds import Metrics, Pair, Side, all_running, alternate, summarize
from benchmarks.reports.cpu import cpu_markdown

ONNX = "hf-runtime onnxruntime"
TORCH = "hf-runtime torch"
INFINITY = "infinity"
OPENAI_EMBEDDINGS_PATH = "/v1/embeddings"
# The goals: onnxruntime >= 2x Infinity's throughput at the top concurrency and
# <= 0.5x its p50 at one connection.
GOAL = 2.0


def ours_body(index: int) -> bytes:
    return json.dumps({"model": ENCODER_MODEL_NAME, "input": [sentence(index)]}).encode()


def infinity_body(index: int) -> bytes:
    return infinity.embeddings_body(sentence(index))


class _Server:
    """What rounds.all_up needs to start one server."""

    def __init__(
        self,
        name: str,
        command: Callable[[int], list[str]],
        env: dict[str, str],
        ready_path: str = "/readyz",
        fail_marker: str | None = HF_RUNTIME_LOAD_FAILED,
    ) -> None:
        self.name, self.command, self.env = name, command, env
        self.ready_path, self.fail_marker, self.cwd = ready_path, fail_marker, None


def servers(s: Settings, with_infinity: bool) -> tuple[list[_Server], str | None]:
    """The servers to start, and why Infinity is missing (None when it is there)."""
    minilm = config_subset(s.config, [ENCODER_MODEL_NAME], s.out_dir / "logs.tmp" / "minilm.yaml")
    command = hf_runtime_command(minilm)
    started = [
        _Server(name, command, {"HF_RUNTIME_BACKEND": backend, **NO_GRPC})
        for name, backend in ((ONNX, "onnxruntime"), (TORCH, "huggingface"))
    ]
    if not with_infinity:
        return started, "not asked for (--no-infinity)"
    venv = infinity.default_venv()
    problem = infinity.install_infinity(venv)
    if problem is not None:
        return started, f"infinity-emb {infinity.INFINITY_VERSION} did not install: {problem}"
    command = infinity.infinity_command(venv, minilm_dir())
    started.append(_Server(INFINITY, command, infinity.ENV, infinity.READY_PATH, None))
    return started, None


def _inference_threads(name: str) -> tuple[str, ...]:
    return infinity.INFERENCE_THREADS if name == INFINITY else INFERENCE_PREFIXES


def _route(name: str) -> tuple[str, Callable[[int], bytes]]:
    if name == INFINITY:
        return infinity.EMBEDDINGS_PATH, infinity_body
    return OPENAI_EMBEDDINGS_PATH, ours_body


def _vectors(url: str, name: str) -> list[list[float]]:
    path, body = _route(name)
    vectors = []
    for index in range(len(SENTENCES)):
        response = httpx.post(
            url + path, content=body(index), timeout=120,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        response.raise_for_status()
        vectors.append(list(response.json()["data"][0]["embedding"]))
    return vectors


def _cosines(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> list[float]:
    out = []
    for x, y in zip(a, b, strict=True):
        dot = sum(p * q for p, q in zip(x, y, strict=True))
        norm = sum(p * p for p in x) ** 0.5 * sum(q * q for q in y) ** 0.5
        out.append(dot / norm)
    return out


def paired_phase(
    s: Settings,
    concurrencies: Sequence[int],
    with_infinity: bool = True,
    inprocess: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Vectors against the torch server's, then paired rounds at each concurrency (the top
    one with the in-process forwards, at the best batches `inprocess`'s speed rows show)."""
    started, missing = servers(s, with_infinity)
    window = s.level_s / s.windows
    top = max(concurrencies)
    with all_running(s, started) as running:
        urls = {name: up.url for name, up in running.items()}
        reference = _vectors(urls[TORCH], TORCH)
        vectors = {
            name: {"min_cosine_vs_torch": round(min(_cosines(_vectors(url, name), reference)), 7)}
            for name, url in urls.items()
            if name != TORCH
        }

        def side(name: str, up: RunningServer, concurrency: int) -> Side:
            path, body = _route(name)

            def measure() -> Metrics:
                summary, cpu = measure_with_cpu(
                    up.pid, up.thread_names_dir, up.url, path, body, concurrency=concurrency,
                    duration_s=window, warmup_s=min(1.0, s.warmup_s), use_c=s.loadgen == "c",
                    inference_prefixes=_inference_threads(name),
                )  # fmt: skip
                return {"throughput_rps": summary["throughput_rps"], "p50_ms": summary["p50_ms"],
                        "cpu": cpu}  # fmt: skip

            return Side(name, measure)

        levels = {}
        for concurrency in concurrencies:
            sides = [side(name, up, concurrency) for name, up in running.items()]
            if concurrency == top:
                batches = onnx_bounds.best_batches(inprocess)
                sides += onnx_bounds.inprocess_sides(window, batches)
            levels[concurrency] = alternate(sides, s.paired_rounds)
    return {
        "bounds": onnx_bounds.bounds(levels[top], INFINITY),
        "vectors": vectors,
        "infinity_missing": missing,
        "levels": {str(c): values for c, values in levels.items()},
        "pairs": _pairs(levels, concurrencies),
        "window_s": window,
        "rounds": s.paired_rounds,
    }


def _pairs(levels: dict[int, Any], concurrencies: Sequence[int]) -> list[dict[str, Any]]:
    top, bottom = max(concurrencies), min(concurrencies)
    out = []
    for concurrency, metric, lower in ((top, "throughput_rps", False), (bottom, "p50_ms", True)):
        values = levels[concurrency]
        wanted = [
            Pair(ONNX, INFINITY, metric, f"c={concurrency} {metric} vs Infinity", GOAL, lower),
            Pair(ONNX, TORCH, metric, f"c={concurrency} {metric} vs torch", 1.0, lower),
            Pair(TORCH, INFINITY, metric, f"c={concurrency} {metric} torch vs Infinity", 1, lower),
        ]  # fmt: skip
        for pair in wanted:
            if pair.ours in values and pair.theirs in values:
                out.append({**summarize(pair, values), "concurrency": concurrency})
    return out


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [
        f"Paired rounds over HTTP ({results['rounds']} rounds of {results['window_s']:.0f} s "
        "windows per server and level; one sentence per embeddings request; ratio above 1 means "
        "the first server is ahead; p50 ratios are theirs / ours):",
        "",
        "| comparison | c | metric | median ratio | per round | goal |",
        "|---|---|---|---|---|---|",
    ]
    for pair in results["pairs"]:
        rounds = ", ".join(f"{r:.2f}" for r in pair["ratios"])
        lines.append(
            f"| {pair['ours']} vs {pair['theirs']} | {pair['concurrency']} | {pair['metric']} "
            f"| {pair['median']} | {rounds} | {pair['goal']} |"
        )
    lines += ["", "Absolute values per round (this machine, this run):", ""]
    for concurrency, values in results["levels"].items():
        for name, rounds in values.items():
            cells = "; ".join(_cells(m) for m in rounds)
            lines.append(f"- c={concurrency} {name}: {cells}")
    top = max(int(c) for c in results["levels"])
    if results.get("bounds"):
        lines += ["", *onnx_bounds.markdown(results["bounds"], top)]
    lines += [""]
    lines += cpu_markdown([
        (name, int(concurrency), [m.get("cpu") for m in rounds])
        for concurrency, values in results["levels"].items()
        for name, rounds in values.items()
        if name not in onnx_bounds.INPROCESS
    ])  # fmt: skip
    lines += [""]
    for name, check in results["vectors"].items():
        lines.append(f"- {name}: smallest cosine to the torch server's vectors "
                     f"{check['min_cosine_vs_torch']}")  # fmt: skip
    if results["infinity_missing"]:
        lines.append(f"- Infinity not measured: {results['infinity_missing']}")
    return lines


def _cells(m: Metrics) -> str:
    if "p50_ms" not in m:  # an in-process side
        return f"{m['throughput_rps']} sentences/s (batch {m['batch_size']})"
    return f"{m['throughput_rps']} req/s, p50 {m['p50_ms']} ms"
