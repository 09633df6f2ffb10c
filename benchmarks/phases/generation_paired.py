"""The generation's paired rounds: huggingface against raw generate(), the vllm backend
against vLLM's own server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.machine import log
from benchmarks.core.names import VLLM_SERVER
from benchmarks.core.settings import Settings
from benchmarks.peers.raw_generate import raw_generate_process
from benchmarks.phases.rounds import Pair, Side, all_up, alternate, summarize
from benchmarks.phases.streams import _stream_window, warm_up_stream


def _one_short_stream(url: str) -> None:
    asyncio.run(warm_up_stream(url))


def generation_pairs(s: Settings, servers: Sequence[Any], model_dir: Path) -> list[dict[str, Any]]:
    """huggingface at 1 and 8 streams against raw generate() at batch 1 and 8; the vllm
    backend against vLLM's own server at every --streams. `servers`: generation.py's
    GenerationServers of this run (the huggingface, vllm and vllm-server ones are used)."""
    by_name = {server.name: server for server in servers}
    results: list[dict[str, Any]] = []
    if "huggingface" in by_name:
        log("generation: paired rounds, huggingface vs raw generate()")
        with (
            all_up(s, [by_name["huggingface"]], _one_short_stream) as urls,
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
        with all_up(s, [by_name["vllm"], by_name[VLLM_SERVER]], _one_short_stream) as urls:
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
