"""The ceiling: MiniLM's own throughput in this process, at its best batch size.

Each measured call tokenizes a batch of short sentences, runs one forward pass and pools, so
it is the least work any server must do per sentence; no HTTP, JSON or queueing. A server
that batches across requests can approach this number and never beat it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.workload import SENTENCES, sentence
from benchmarks.loadgen.pyload import percentile
from benchmarks.peers.minilm import embed, load_minilm

BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


def time_batch(tokenizer: Any, model: Any, batch: list[str], seconds: float) -> list[float]:
    """Seconds per call of `embed(batch)`, repeated for `seconds` (at least 5 calls)."""
    for _ in range(2):  # warm the allocator and any lazy kernels for this shape
        embed(tokenizer, model, batch)
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(timings) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        embed(tokenizer, model, batch)
        timings.append(time.perf_counter() - started)
    return timings


def measure_ceiling(
    model_dir: Path,
    *,
    dtype: str = "float32",
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seconds_per_size: float = 1.5,
) -> dict[str, Any]:
    """Sweep batch sizes; the best sentences/s and the single-sentence latency (p50)."""
    import torch

    tokenizer, model = load_minilm(model_dir, dtype)
    sweep: list[dict[str, Any]] = []
    for size in batch_sizes:
        # Different sentences per batch, as a server's batches would hold.
        batch = [sentence(i) for i in range(size)]
        timings = time_batch(tokenizer, model, batch, seconds_per_size)
        # The median call, not the mean: a burst of other work on the machine must not
        # lower the ceiling the servers are held against.
        median_s = percentile(timings, 50)
        sweep.append(
            {
                "batch_size": size,
                "sentences_per_s": round(size / median_s, 2),
                "p50_ms": round(median_s * 1000, 3),
                "calls": len(timings),
            }
        )
    best = max(sweep, key=lambda row: row["sentences_per_s"])
    single = next((row for row in sweep if row["batch_size"] == 1), None)
    return {
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "sweep": sweep,
        "best_batch_size": best["batch_size"],
        "best_sentences_per_s": best["sentences_per_s"],
        "single_forward_p50_ms": single["p50_ms"] if single else None,
    }


def bf16_vs_fp32_difference(model_dir: Path, texts: Sequence[str] = SENTENCES) -> dict[str, Any]:
    """How far bfloat16 MiniLM embeddings drift from float32 ones on a fixed sentence set."""
    import torch

    fp32 = embed(*load_minilm(model_dir, "float32"), texts)
    bf16 = embed(*load_minilm(model_dir, "bfloat16"), texts)
    cosine = torch.nn.functional.cosine_similarity(fp32, bf16, dim=1)
    return {
        "sentences": len(texts),
        "max_abs_diff": float((fp32 - bf16).abs().max()),
        "min_cosine_similarity": float(cosine.min()),
    }
