"""Rerank throughput: `python -m benchmarks.rerank [--quick] [--concurrency 1,64] [--no-http]`.

The model is a MiniLM-L6-sized cross-encoder: all-MiniLM-L6-v2's encoder (6 layers, hidden
384, as cross-encoder/ms-marco-MiniLM-L-6-v2 has) under a seeded one-label head, saved once
under ~/.cache/hf-runtime (no Hub access needed). Its scores mean nothing; its cost per pair is
a real MiniLM cross-encoder's. One query and one short document per request (about 20 tokens a
pair). Measured, on this machine and in this run:
  1. the ceiling: tokenize a batch of pairs, one forward pass, sigmoid, in this process, at the
     best batch size (no queue, no HTTP);
  2. the served model in-process: `concurrency` concurrent one-pair `score` calls through the
     batcher (no HTTP);
  3. hf-runtime under `bentoml serve`: `concurrency` closed-loop clients, one-pair POST
     /v1/rerank each (skipped with --no-http).
Writes <out-dir>/rerank.json and rerank.md (default benchmarks/results); prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks.core.machine import machine_info
from benchmarks.core.settings import RESULTS_DIR
from benchmarks.core.workload import minilm_dir, sentence
from benchmarks.loadgen.pyload import percentile, run_load
from benchmarks.peers.ceiling import BATCH_SIZES
from benchmarks.peers.servers import hf_runtime_command, serve_process

MODEL_NAME = "reranker"
RERANK_PATH = "/v1/rerank"
QUERIES = (
    "What is the weather like today?",
    "Where does the train to Berlin leave?",
    "How do I bake fresh bread?",
    "Which market sells apples?",
)


def query(index: int) -> str:
    return QUERIES[index % len(QUERIES)]


def rerank_body(index: int) -> bytes:
    """One query and one document: the one-pair request measured at every level."""
    body = {"model": MODEL_NAME, "query": query(index), "documents": [sentence(index)]}
    return json.dumps(body).encode()


def cross_encoder_dir(base: Path | None = None, out: Path | None = None) -> Path:
    """MiniLM's encoder under a seeded one-label head, marked as a sentence-transformers
    CrossEncoder (so hf-runtime infers task rerank); built once, then reused."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertForSequenceClassification

    base = base or minilm_dir()
    cache = Path(os.environ.get("HF_RUNTIME_CACHE_DIR") or Path.home() / ".cache" / "hf-runtime")
    out = out or cache / "bench-minilm-cross-encoder"
    if (out / "config.json").is_file():
        return out
    encoder = AutoModel.from_pretrained(base)
    config = encoder.config
    config.num_labels = 1
    config.architectures = ["BertForSequenceClassification"]
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(encoder.state_dict(), strict=False)  # the head stays seeded
    model.eval().save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def measure_ceiling(model_dir: Path, seconds_per_size: float) -> dict[str, Any]:
    """Pairs per second of tokenize + forward + sigmoid at each batch size; the best."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def run(size: int) -> None:
        queries = [query(i) for i in range(size)]
        documents = [sentence(i) for i in range(size)]
        encoded = tokenizer(queries, documents, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            torch.sigmoid(model(**encoded).logits)

    sweep = []
    for size in (s for s in BATCH_SIZES if s <= 64):
        for _ in range(2):  # warm up this shape
            run(size)
        timings: list[float] = []
        deadline = time.perf_counter() + seconds_per_size
        while len(timings) < 5 or time.perf_counter() < deadline:
            started = time.perf_counter()
            run(size)
            timings.append(time.perf_counter() - started)
        median = percentile(timings, 50)
        sweep.append({"batch_size": size, "pairs_per_s": round(size / median, 1)})
    best = max(sweep, key=lambda row: row["pairs_per_s"])
    return {"sweep": sweep, "best_batch_size": best["batch_size"], "best": best["pairs_per_s"]}


async def _closed_loop(scorer: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` callers, each sending its next one-pair request when one returns."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await scorer.score([query(index)], [sentence(index)])
            latencies.append(time.perf_counter() - started)
            index += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "pairs_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
    }


async def _served_levels(
    model_dir: Path, concurrencies: Sequence[int], seconds: float
) -> list[dict[str, Any]]:
    from hf_runtime.config import ModelConfig
    from hf_runtime.model import Scorer, require_capability
    from hf_runtime.runtime.loading import load_model

    config = ModelConfig(model_name=MODEL_NAME, model_dir=str(model_dir), disable_log_requests=True)
    model = (await load_model(config)).model
    try:
        scorer = require_capability(model, Scorer)
        await _closed_loop(scorer, 4, 0.5)  # warm up
        return [await _closed_loop(scorer, c, seconds) for c in concurrencies]
    finally:
        await model.aclose()


async def _http_levels(
    model_dir: Path, concurrencies: Sequence[int], seconds: float, out_dir: Path
) -> list[dict[str, Any]]:
    logs = out_dir / "logs.tmp"  # ignored by git, like the main benchmark's server logs
    logs.mkdir(parents=True, exist_ok=True)
    config = logs / "rerank.yaml"
    model = {"model_name": MODEL_NAME, "model_dir": str(model_dir)}  # task inferred: rerank
    config.write_text(yaml.safe_dump({"models": [model]}))
    levels = []
    command = hf_runtime_command(config, {"grpc_port": "0"})
    with serve_process(command, log_path=logs / "rerank-server.log") as server:
        await run_load(server.url, RERANK_PATH, rerank_body, concurrency=4, duration_s=1.0)
        for concurrency in concurrencies:
            result = await run_load(
                server.url, RERANK_PATH, rerank_body, concurrency=concurrency, duration_s=seconds
            )
            summary = result.summary()
            levels.append({key: summary[key] for key in (
                "concurrency", "requests", "errors", "throughput_rps", "p50_ms", "p99_ms",
                "error_samples",
            )})  # fmt: skip
    return levels


def markdown(results: dict[str, Any]) -> str:
    ceiling = results["ceiling"]
    lines = [
        "# Rerank throughput (one query + one document per request)",
        "",
        f"Machine: {results['machine']['cpu_model']}, {results['machine']['usable_cores']} "
        f"cores, torch {results['machine']['torch']} ({results['machine']['torch_threads']} "
        "threads), float32, a MiniLM-L6-sized cross-encoder.",
        "",
        "| what | concurrency | pairs/s | p50 ms | vs ceiling |",
        "|---|---:|---:|---:|---:|",
        f"| in-process ceiling (batch {ceiling['best_batch_size']}, no queue, no HTTP) | | "
        f"{ceiling['best']} | | 1.00 |",
    ]
    for row in results["in_process"]:
        lines.append(
            f"| served model, `score()` through the batcher | {row['concurrency']} | "
            f"{row['pairs_per_s']} | {row['p50_ms']} | {row['pairs_per_s'] / ceiling['best']:.2f} |"
        )
    for row in results.get("http", []):
        lines.append(
            f"| hf-runtime, `bentoml serve`, POST {RERANK_PATH} | {row['concurrency']} | "
            f"{row['throughput_rps']} | {row['p50_ms']} | "
            f"{row['throughput_rps'] / ceiling['best']:.2f} (errors {row['errors']}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rerank", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated levels")
    parser.add_argument("--no-http", action="store_true", help="skip the bentoml serve runs")
    parser.add_argument("--model-dir", type=Path, default=None, help="a cross-encoder folder")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    seconds = 2.0 if args.quick else 10.0
    out_dir = (args.out_dir or (RESULTS_DIR / "quick.tmp" if args.quick else RESULTS_DIR)).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or cross_encoder_dir()
    results: dict[str, Any] = {"machine": machine_info(), "model_dir": model_dir.name}
    results["ceiling"] = measure_ceiling(model_dir, 0.3 if args.quick else 1.5)
    results["in_process"] = asyncio.run(_served_levels(model_dir, concurrencies, seconds))
    if not args.no_http:
        results["http"] = asyncio.run(_http_levels(model_dir, concurrencies, seconds, out_dir))
    (out_dir / "rerank.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = markdown(results)
    (out_dir / "rerank.md").write_text(summary)
    print(summary, flush=True)
    return 1 if any(row["errors"] for row in results.get("http", [])) else 0


if __name__ == "__main__":
    raise SystemExit(main())
