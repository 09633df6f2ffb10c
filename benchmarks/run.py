"""The throughput benchmark: `python -m benchmarks.run [--quick] [--only encoder|generation]`.

One invocation measures, on this machine and in this run:
  encoder (all-MiniLM-L6-v2, one short sentence per KServe V1 predict request)
    1. the ceiling: the model's own best throughput in this process (ceiling.py);
    2. the per-request baseline server (baseline_server.py);
    3. BentoML's adaptive batching (bentoml_batching_service.py), unless --variants none;
    4. hf-runtime under a real `bentoml serve service:HFRuntime` with the default config,
  each at every --concurrency, for every --dtype (baseline and variants at the first only);
  generation (SmolLM2-135M-Instruct, streaming /v1/chat/completions) per --backends.
Results go to <out-dir>/latest.json, latest.md and throughput.png; the Markdown is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from benchmarks import report
from benchmarks.loadgen import run_load, run_streams
from benchmarks.servers import (
    REPO_ROOT,
    baseline_command,
    bentoml_batching_command,
    config_subset,
    hf_runtime_command,
    serve_process,
)
from benchmarks.workload import (
    CHAT_MODEL_NAME,
    CHAT_PATH,
    V1_PREDICT_PATH,
    chat_stream_body,
    minilm_dir,
    sentence,
    v1_predict_body,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
VARIANTS = ("bentoml-batching",)
BACKENDS = ("huggingface", "vllm")
SERVER_START_TIMEOUT_S = 600.0  # the first start converts SmolLM2's GGUF


@dataclass(frozen=True)
class Settings:
    phases: tuple[str, ...]
    backends: tuple[str, ...]
    dtypes: tuple[str, ...]
    variants: tuple[str, ...]
    concurrencies: tuple[int, ...]
    streams: tuple[int, ...]
    level_s: float
    warmup_s: float
    stream_level_s: float
    max_tokens: int
    ceiling_s_per_size: float
    config: Path
    out_dir: Path
    quick: bool


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine_info() -> dict[str, Any]:
    import bentoml
    import torch
    import transformers

    cpu_model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bentoml": bentoml.__version__,
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _v1_answer_cosine(url: str, reference: Sequence[float]) -> float:
    """Cosine between the server's embedding of sentence(0) and the in-process one."""
    response = httpx.post(
        url + V1_PREDICT_PATH,
        content=v1_predict_body(0),
        timeout=120,
        headers={"content-type": "application/json"},
    )
    response.raise_for_status()
    vector = response.json()["predictions"][0]
    if len(vector) != len(reference):
        raise ValueError(f"expected a {len(reference)}-float embedding, got {len(vector)} values")
    dot = sum(a * b for a, b in zip(vector, reference, strict=True))
    norms = sum(a * a for a in vector) ** 0.5 * sum(b * b for b in reference) ** 0.5
    return dot / norms if norms else 0.0


async def _encoder_levels(url: str, s: Settings, name: str) -> list[dict[str, Any]]:
    levels = []
    for concurrency in s.concurrencies:
        await run_load(
            url, V1_PREDICT_PATH, v1_predict_body, concurrency=concurrency, duration_s=s.warmup_s
        )
        result = await run_load(
            url, V1_PREDICT_PATH, v1_predict_body, concurrency=concurrency, duration_s=s.level_s
        )
        summary = result.summary()
        levels.append(summary)
        log(
            f"  {name} c={concurrency}: {summary['throughput_rps']} req/s, "
            f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
            f"errors {summary['errors']}"
        )
    return levels


def measure_encoder_server(
    name: str,
    dtype: str,
    command: Callable[[int], list[str]],
    env: dict[str, str],
    s: Settings,
    reference: Sequence[float],
) -> dict[str, Any]:
    run: dict[str, Any] = {"server": name, "dtype": dtype, "levels": []}
    log(f"encoder: starting {name} ({dtype})")
    started = time.monotonic()
    try:
        with serve_process(
            command,
            log_path=s.out_dir / "logs.tmp" / f"{name}-{dtype}.log",
            env=env,
            ready_timeout=SERVER_START_TIMEOUT_S,
        ) as url:
            run["start_s"] = round(time.monotonic() - started, 1)
            cosine = _v1_answer_cosine(url, reference)
            run["answer_cosine_vs_in_process"] = round(cosine, 6)
            if cosine < 0.99:
                raise ValueError(f"the server's embedding differs from MiniLM's (cos {cosine:.4f})")
            run["levels"] = asyncio.run(_encoder_levels(url, s, name))
    except (RuntimeError, ValueError, KeyError, httpx.HTTPError) as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
        log(f"  {name} failed: {run['error'][:500]}")
    return run


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
            f"{ceiling['best_batch_size']}; single {ceiling['single_forward_p50_ms']} ms"
        )
    result["dtype_difference"] = bf16_vs_fp32_difference(model_dir)
    reference = embed(*load_minilm(model_dir, "float32"), [sentence(0)])[0].tolist()

    for index, dtype in enumerate(s.dtypes):
        servers: list[tuple[str, Callable[[int], list[str]], dict[str, str]]] = []
        if index == 0:  # the per-request and BentoML comparisons: at the first dtype only
            servers.append((report.BASELINE, baseline_command(dtype), {}))
            if "bentoml-batching" in s.variants:
                servers.append(
                    (report.BENTOML_BATCHING, bentoml_batching_command(), {"BENCH_DTYPE": dtype})
                )
        servers.append(
            (report.HF_RUNTIME, hf_runtime_command(s.config), {"HF_RUNTIME_DTYPE": dtype})
        )
        for name, command, env in servers:
            result["runs"].append(measure_encoder_server(name, dtype, command, env, s, reference))
    return result


async def _generation_levels(url: str, s: Settings, backend: str) -> list[dict[str, Any]]:
    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=s.max_tokens)

    # One short stream first, so the first level does not pay for lazy initialisation.
    await run_streams(
        url,
        CHAT_PATH,
        lambda i: chat_stream_body(i, max_tokens=4),
        concurrency=1,
        duration_s=0,
        max_streams=1,
    )
    levels = []
    for concurrency in s.streams:
        result = await run_streams(
            url, CHAT_PATH, body, concurrency=concurrency, duration_s=s.stream_level_s
        )
        summary = result.summary()
        levels.append(summary)
        log(
            f"  {backend} streams={concurrency}: {summary['tokens_per_s']} tokens/s, "
            f"TTFT p50 {summary['ttft_p50_ms']} ms, errors {summary['errors']}"
        )
    return levels


def measure_generation_backend(backend: str, s: Settings) -> dict[str, Any]:
    run: dict[str, Any] = {"backend": backend, "levels": []}
    if backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            run["skipped"] = "vllm is not installed in this environment (see make install-vllm)"
            log(f"generation: {backend} skipped: {run['skipped']}")
            return run
        subset = config_subset(s.config, [CHAT_MODEL_NAME], s.out_dir / "logs.tmp" / "vllm.yaml")
        command = hf_runtime_command(subset, {"backend": "vllm"})
    else:
        command = hf_runtime_command(s.config)
    log(f"generation: starting hf-runtime ({backend})")
    started = time.monotonic()
    try:
        with serve_process(
            command,
            log_path=s.out_dir / "logs.tmp" / f"generation-{backend}.log",
            ready_timeout=SERVER_START_TIMEOUT_S,
        ) as url:
            run["start_s"] = round(time.monotonic() - started, 1)
            run["levels"] = asyncio.run(_generation_levels(url, s, backend))
    except (RuntimeError, ValueError, httpx.HTTPError) as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
        log(f"  {backend} failed: {run['error'][:500]}")
    return run


def generation_phase(s: Settings) -> dict[str, Any]:
    return {
        "model": "SmolLM2-135M-Instruct",
        "settings": {"max_tokens": s.max_tokens, "temperature": 0, "ignore_eos": True},
        "runs": [measure_generation_backend(backend, s) for backend in s.backends],
    }


def _csv(
    kind: Callable[[str], Any], allowed: Sequence[Any] | None = None
) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        values = tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad} not in {list(allowed or [])}")
        return values

    return parse


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--only", choices=("encoder", "generation"))
    parser.add_argument("--backends", type=_csv(str, BACKENDS), default=("huggingface",))
    parser.add_argument(
        "--dtype",
        type=_csv(str, ("float32", "bfloat16")),
        default=("float32", "bfloat16"),
        help="encoder dtypes, first is the main run",
    )
    parser.add_argument(
        "--variants",
        default="bentoml-batching",
        help="extra encoder servers: bentoml-batching, or none",
    )
    parser.add_argument("--concurrency", type=_csv(int), default=(1, 16, 64))
    parser.add_argument("--streams", type=_csv(int), default=(1, 8, 32))
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="default benchmarks/results (quick runs: benchmarks/results/quick.tmp)",
    )
    args = parser.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v and v != "none")
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)} or none")
    if min(args.concurrency + args.streams) < 1:
        parser.error("concurrency and streams must be at least 1")
    quick = bool(args.quick)
    return Settings(
        phases=(args.only,) if args.only else ("encoder", "generation"),
        backends=args.backends,
        dtypes=args.dtype,
        variants=variants,
        concurrencies=args.concurrency,
        streams=args.streams,
        level_s=2.0 if quick else 8.0,
        warmup_s=0.5 if quick else 2.0,
        stream_level_s=2.0 if quick else 15.0,
        max_tokens=args.max_tokens or (16 if quick else 64),
        ceiling_s_per_size=0.3 if quick else 1.5,
        config=args.config.resolve(),
        out_dir=(args.out_dir or (RESULTS_DIR / "quick.tmp" if quick else RESULTS_DIR)).resolve(),
        quick=quick,
    )


def write_outputs(results: dict[str, Any], out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = report.markdown(results)
    (out_dir / "latest.md").write_text(summary)
    report.plot(results, out_dir / "throughput.png")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    s = parse_settings(argv)
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
    }
    log(f"machine: {results['machine']}")
    if "encoder" in s.phases:
        results["encoder"] = encoder_phase(s)
        results["encoder"]["ratios"] = report.encoder_ratios(results["encoder"])
    if "generation" in s.phases:
        results["generation"] = generation_phase(s)
    results["targets"] = report.evaluate_targets(results)
    results["duration_s"] = round(time.monotonic() - started, 1)
    summary = write_outputs(results, s.out_dir)
    print("\n" + summary)
    log(f"done in {results['duration_s']} s; results in {s.out_dir}")
    failed = [
        run
        for phase in ("encoder", "generation")
        for run in (results.get(phase) or {}).get("runs", [])
        if run.get("error")
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
