"""The generation phase: every generation server's stream levels and scenarios, raw generate().

- raw transformers `generate()` at batch 1 and 8 (peers/raw_generate.py);
- time to first token of a lone request against that of N requests sent at the same moment
  (the batched-prefill goal), repeated, medians;
- many short chats at once (100 x 32 tokens by default): stream latency p50/p99;
- vLLM's own OpenAI server on the same converted SmolLM2 folder (peers/vllm_server.py), so the
  vllm backend can be set against it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.core.machine import log
from benchmarks.core.names import HF_BEFORE, VLLM_SERVER
from benchmarks.core.settings import Settings
from benchmarks.core.workload import CHAT_MODEL_NAME, CHAT_PATH, chat_stream_body
from benchmarks.loadgen.pyload import percentile, run_streams
from benchmarks.peers.raw_generate import measure_raw_generate
from benchmarks.peers.servers import (
    HF_RUNTIME_LOAD_FAILED,
    NO_GRPC,
    SERVER_START_TIMEOUT_S,
    config_subset,
    hf_runtime_command,
    serve_process,
    source_tree,
)
from benchmarks.peers.vllm_server import vllm_server_command, vllm_server_env
from benchmarks.phases.generation_paired import generation_pairs
from benchmarks.phases.streams import _generation_levels
from benchmarks.reports.generation import generation_ratios


def chat_model_config(config_path: Path) -> Any:
    from hf_runtime.config import load_config

    config = load_config(args={"config": str(config_path)}, env={})
    return next(m for m in config.models if m.model_name == CHAT_MODEL_NAME)


def chat_model_dir(model_config: Any) -> Path:
    """The converted SmolLM2 folder the servers load (converting the GGUF the first time)."""
    from hf_runtime.sources import resolve_source

    return Path(resolve_source(model_config).model_path)


async def simultaneous_arrivals(url: str, s: Settings) -> dict[str, Any]:
    """TTFT of one request alone, then of `s.simultaneous` sent at once; medians of repeats."""

    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=8)

    lone, together, worst = [], [], []
    for _ in range(s.arrival_repeats):
        alone = await run_streams(url, CHAT_PATH, body, concurrency=1, duration_s=0, max_streams=1)
        burst = await run_streams(
            url, CHAT_PATH, body, concurrency=s.simultaneous, duration_s=0,
            max_streams=s.simultaneous,
        )  # fmt: skip
        if alone.errors or burst.errors or not alone.ttft_s or not burst.ttft_s:
            samples = alone.error_samples + burst.error_samples
            raise RuntimeError(f"simultaneous arrivals failed: {samples[:1]}")
        lone.append(alone.ttft_s[0])
        together.append(percentile(burst.ttft_s, 50))
        worst.append(max(burst.ttft_s))
    lone_ms = 1000 * statistics.median(lone)
    together_ms = 1000 * statistics.median(together)
    return {
        "requests": s.simultaneous,
        "lone_ttft_ms": round(lone_ms, 1),
        "simultaneous_ttft_p50_ms": round(together_ms, 1),
        "simultaneous_ttft_max_ms": round(1000 * statistics.median(worst), 1),
        "ratio_p50_vs_lone": round(together_ms / lone_ms, 2) if lone_ms else None,
    }


async def short_chats(url: str, s: Settings) -> dict[str, Any]:
    """`s.short_chats` chats of `s.short_chat_tokens` tokens, all sent at once."""

    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=s.short_chat_tokens)

    result = await run_streams(
        url, CHAT_PATH, body, concurrency=s.short_chats, duration_s=0, max_streams=s.short_chats,
        hard_limit_s=max(300.0, s.stream_limit_s),
    )  # fmt: skip
    summary = result.summary()
    return {
        "chats": s.short_chats,
        "max_tokens": s.short_chat_tokens,
        "done": summary["streams"],
        "errors": summary["errors"],
        "cut_off": summary["cut_off"],
        "latency_p50_s": round(percentile(result.stream_s, 50), 2),
        "latency_p99_s": round(percentile(result.stream_s, 99), 2),
        "ttft_p50_ms": summary["ttft_p50_ms"],
        "ttft_p99_ms": summary.get("ttft_p99_ms"),
        "tokens_per_s": summary["tokens_per_s"],
    }


async def scenarios(url: str, s: Settings) -> dict[str, Any]:
    return {
        "simultaneous": await simultaneous_arrivals(url, s),
        "short_chats": await short_chats(url, s),
    }


@dataclass(frozen=True)
class GenerationServer:
    name: str  # the run's name ("backend") in the results
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # the source tree it runs from (None: this one)
    ready_path: str = "/readyz"
    fail_marker: str | None = HF_RUNTIME_LOAD_FAILED
    backend: str | None = None  # the hf-runtime backend its log must name (None: not ours)


def served_backend(log_text: str) -> str | None:
    """The backend hf-runtime's log says it loaded the chat model on."""
    match = re.search(rf"model {CHAT_MODEL_NAME}: task \S+, backend (\S+)", log_text)
    return match.group(1) if match else None


def generation_servers(s: Settings, model_dir: Path, max_num_seqs: int) -> list[GenerationServer]:
    logs = s.out_dir / "logs.tmp"
    servers: list[GenerationServer] = []
    for backend in s.backends:
        # Only smollm2: faster to start, and `backend` applies to every model of a config.
        subset = config_subset(s.config, [CHAT_MODEL_NAME], logs / f"generation-{backend}.yaml")
        # Named, never `auto`: auto serves a Llama on vLLM whenever vLLM is installed.
        command = hf_runtime_command(subset, {"backend": backend})
        # HTTP only: a gRPC port would collide with any other server on the machine.
        servers.append(GenerationServer(backend, command, env=dict(NO_GRPC), backend=backend))
        if backend == "huggingface" and s.before:
            # The same backend from another commit (its own config: newer keys would not load).
            tree = source_tree(s.before, s.out_dir / "before.tmp")
            before = config_subset(
                tree / "configs" / "default.yaml",
                [CHAT_MODEL_NAME],
                logs / "generation-before.yaml",
            )
            servers.append(GenerationServer(
                HF_BEFORE, hf_runtime_command(before, {"backend": backend}), cwd=tree,
                env={"PYTHONPATH": str(tree), **NO_GRPC}, backend=backend,
            ))  # fmt: skip
        if backend == "vllm":
            servers.append(GenerationServer(
                VLLM_SERVER, vllm_server_command(model_dir, max_num_seqs), env=vllm_server_env(),
                ready_path="/health", fail_marker=None,
            ))  # fmt: skip
    return servers


def measure_generation_server(server: GenerationServer, s: Settings) -> dict[str, Any]:
    run: dict[str, Any] = {"backend": server.name, "levels": []}
    log(f"generation: starting {server.name}")
    started = time.monotonic()
    log_path = s.out_dir / "logs.tmp" / f"generation-{server.name}.log"
    try:
        with serve_process(
            server.command, log_path=log_path, env=server.env, ready_path=server.ready_path,
            ready_timeout=SERVER_START_TIMEOUT_S, fail_marker=server.fail_marker, cwd=server.cwd,
        ) as running:  # fmt: skip
            run["start_s"] = round(time.monotonic() - started, 1)
            if server.backend is not None:
                served = served_backend(log_path.read_text(errors="replace"))
                if served != server.backend:
                    raise RuntimeError(f"asked for backend {server.backend}, served by {served}")
            run["levels"] = asyncio.run(
                _generation_levels(running.url, s, server.name, running.cpu_seconds)
            )
            run.update(asyncio.run(scenarios(running.url, s)))
            burst, chats = run["simultaneous"], run["short_chats"]
            log(
                f"  {server.name}: TTFT alone {burst['lone_ttft_ms']} ms, {burst['requests']} at "
                f"once p50 {burst['simultaneous_ttft_p50_ms']} ms; {chats['chats']} chats "
                f"p50 {chats['latency_p50_s']} s, p99 {chats['latency_p99_s']} s"
            )
    except (RuntimeError, ValueError, httpx.HTTPError) as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        log(f"  {server.name} failed: {run['error'][:300]}")
    return run


def generation_phase(s: Settings) -> dict[str, Any]:
    model_config = chat_model_config(s.config)
    model_dir = chat_model_dir(model_config)
    result: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct",
        "settings": {
            "max_tokens": s.max_tokens, "temperature": 0, "ignore_eos": True,
            "max_num_seqs": model_config.generation.max_num_seqs,
            "simultaneous": s.simultaneous, "short_chats": s.short_chats,
            "short_chat_tokens": s.short_chat_tokens,
        },
        "runs": [],
    }  # fmt: skip
    if "huggingface" in s.backends:
        log("generation: raw transformers generate(), batch 1 and 8")
        result["raw_generate"] = measure_raw_generate(s, model_dir)
        log(f"  {result['raw_generate']}")
    backends = s.backends
    if "vllm" in backends and importlib.util.find_spec("vllm") is None:
        skipped = "vllm is not installed in this environment (make install-vllm)"
        result["runs"].append({"backend": "vllm", "levels": [], "skipped": skipped})
        backends = tuple(b for b in backends if b != "vllm")
    settings = replace(s, backends=backends)
    max_num_seqs = model_config.generation.max_num_seqs
    servers = generation_servers(settings, model_dir, max_num_seqs)
    for server in servers:
        result["runs"].append(measure_generation_server(server, s))
    result["ratios"] = generation_ratios(result)
    if s.paired_rounds:
        try:
            result["paired"] = generation_pairs(settings, servers, model_dir)
        except (RuntimeError, ValueError, httpx.HTTPError) as exc:
            result["paired_error"] = f"{type(exc).__name__}: {exc}"[:3000]
            log(f"  paired rounds failed: {result['paired_error'][:300]}")
    return result
