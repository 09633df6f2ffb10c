"""The encoder's paired rounds: hf-runtime (and --before's) against the in-process ceiling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from benchmarks.core import names
from benchmarks.core.settings import Settings
from benchmarks.core.workload import V1_PREDICT_PATH, minilm_dir, sentence, v1_predict_body
from benchmarks.loadgen.hfload import measure_level
from benchmarks.peers.ceiling import time_batch
from benchmarks.peers.minilm import load_minilm
from benchmarks.phases.encoder_servers import hf_runtime_encoder_servers
from benchmarks.phases.rounds import Metrics, Pair, Side, all_up, alternate, summarize


def encoder_pairs(s: Settings, ceiling: dict[str, Any], dtype: str) -> list[dict[str, Any]]:
    """hf-runtime (and --before's) at the top concurrency against the in-process ceiling at
    its best batch size, in alternating windows."""
    top = max(s.concurrencies)
    tokenizer, model = load_minilm(minilm_dir(), dtype)
    batch = [sentence(i) for i in range(ceiling["best_batch_size"])]
    window = s.level_s / s.windows

    def ceiling_window() -> Metrics:
        timings = time_batch(tokenizer, model, batch, window)
        return {"throughput_rps": round(len(batch) * len(timings) / sum(timings), 2)}

    servers = hf_runtime_encoder_servers(s, dtype, before=True)
    with all_up(s, servers) as urls:

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
    pairs = [Pair(names.HF_RUNTIME, "ceiling", "throughput_rps",
                  f"c={top} throughput vs ceiling ({dtype})", 0.8)]  # fmt: skip
    if names.HF_RUNTIME_BEFORE in values:
        pairs.append(Pair(names.HF_RUNTIME_BEFORE, "ceiling", "throughput_rps",
                          f"c={top} throughput vs ceiling, before ({dtype})", 0.8))  # fmt: skip
    return [{**summarize(pair, values), "concurrency": top} for pair in pairs]
