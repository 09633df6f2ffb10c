"""Where hf-runtime's own CPU goes per encoder request (V1 predict, or --route's): instrumented
timing, in-process, no HTTP.

Builds the real protocol apps and gateway over a real MiniLM (as service.py mounts them, in a
Starlette app standing in for BentoML's router), sends `--requests` one-sentence KServe V1
predict requests straight through ASGI from `--concurrency` tasks, and times the CPU of the
pieces each request runs through, in whichever thread runs them:
  json decode + validation (kserve_v1.parse_request), tokenizing, forward, postprocessing,
  response encoding, the request log line,
and everything else of the process (gateway, FastAPI/Starlette routing, the data plane,
asyncio and the thread hops) as the rest. torch runs with one thread here so that the
forward's CPU is the inference thread's own. Prints one JSON object.

Run from any source tree (PYTHONPATH=<tree>: the parent commit's too), so before and after are
measured by the same code: python -m benchmarks.phases.path_profile --config FILE
[--route v1|embeddings|openai-embeddings|v2|score|rerank]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.core.settings import REPO_ROOT
from benchmarks.phases.route_overhead import post_once

# (category, module, attribute path): wrapped when present in the tree being measured.
PROBES: tuple[tuple[str, str, str], ...] = (
    ("json decode + validation", "hf_runtime.protocols.kserve_v1", "parse_request"),
    ("tokenize", "hf_runtime.backends.huggingface.encoder_backend", "HFEncoderBackend.tokenize"),
    ("forward", "hf_runtime.backends.huggingface.encoder_backend", "HFEncoderBackend.forward"),
    ("postprocess", "hf_runtime.tasks.text_embedding", "TextEmbeddingProcessor.postprocess"),
    ("encode response", "hf_runtime.protocols.codecs.v1_json", "encode_prediction"),
    ("encode response", "hf_runtime.protocols.codecs.v1_json", "prediction_json"),
    ("encode response", "starlette.responses", "JSONResponse.render"),
    ("request log", "hf_runtime.runtime.encoder_model", "EncoderModel._log_request"),
    ("encode response", "hf_runtime.protocols.openai.embeddings", "_embedding_json"),
    ("encode response", "hf_runtime.protocols.openai.scoring", "_score_json"),
    ("encode response", "hf_runtime.protocols.openai.scoring", "_rerank_json"),
)
# --route: the path and body of each encoder route (benchmarks.core.workload's).
ROUTES = {
    "v1": ("V1_PREDICT_PATH", "v1_predict_body"),
    "embeddings": ("OPENAI_EMBEDDINGS_PATH", "embeddings_body"),
    "openai-embeddings": ("OPENAI_PREFIXED_EMBEDDINGS_PATH", "embeddings_body"),
    "v2": ("V2_INFER_PATH", "v2_infer_body"),
    "score": ("SCORE_PATH", "score_body"),
    "rerank": ("RERANK_PATH", "rerank_body"),
}


class Probes:
    """Thread-CPU seconds and calls per category; nested probes count once (the outer)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._depth = threading.local()
        self._lock = threading.Lock()

    def wrap(self, category: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "value", 0)
            self._depth.value = depth + 1
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth.value = depth
                if depth == 0:
                    spent = time.thread_time() - started
                    with self._lock:
                        self.cpu[category] = self.cpu.get(category, 0.0) + spent
                        self.calls[category] = self.calls.get(category, 0) + 1

        return timed

    def install(self) -> list[str]:
        import importlib

        installed = []
        for category, module_name, attribute in PROBES:
            try:
                owner: Any = importlib.import_module(module_name)
            except ImportError:
                continue
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            function = getattr(owner, name, None) if owner is not None else None
            if function is None or inspect.iscoroutinefunction(function):
                continue
            setattr(owner, name, self.wrap(category, function))
            installed.append(f"{module_name}.{attribute}")
        return installed


def _mounted_app(runtime: Any) -> Any:
    """The protocol apps behind the gateway, mounted the way BentoML mounts them."""
    from _bentoml_impl.server.mount import PassiveMount
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    middleware, options = runtime.middleware
    if "direct" in inspect.signature(middleware).parameters:  # the fast path, when it exists
        options = {**options, "direct": runtime.apps}
    routes = [PassiveMount(path, app) for path, app in runtime.apps]
    return Starlette(routes=routes, middleware=[Middleware(middleware, **options)])


async def _drive(app: Any, path: str, bodies: list[bytes], requests: int, concurrency: int) -> int:
    """`requests` POSTs through ASGI from `concurrency` tasks; returns how many answered 200."""
    ok = 0
    issued = 0

    async def worker() -> None:
        nonlocal ok, issued
        while issued < requests:
            issued += 1
            if await post_once(app, path, bodies[issued % len(bodies)]) == 200:
                ok += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def profile(
    config: Path, requests: int, concurrency: int, route: str = "v1"
) -> dict[str, Any]:
    import torch

    from benchmarks.core import workload
    from hf_runtime.observability.logs import configure_logging
    from hf_runtime.runtime.server import Runtime

    torch.set_num_threads(1)
    probes = Probes()
    installed = probes.install()
    runtime = Runtime.from_sources({"config": str(config)})
    configure_logging("text")
    await runtime.registry.load_all()
    app = _mounted_app(runtime)
    path, make_body = (getattr(workload, name) for name in ROUTES[route])
    bodies = [make_body(i) for i in range(16)]
    await _drive(app, path, bodies, min(200, requests), concurrency)  # warm up
    probes.cpu.clear()
    probes.calls.clear()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    ok = await _drive(app, path, bodies, requests, concurrency)
    cpu_total = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    await runtime.registry.close()
    per_request = {k: round(1e6 * v / max(1, ok), 1) for k, v in probes.cpu.items()}
    measured = sum(probes.cpu.values())
    per_request["rest (gateway, routing, data plane, asyncio, hops)"] = round(
        1e6 * (cpu_total - measured) / max(1, ok), 1
    )
    return {
        "requests": ok,
        "concurrency": concurrency,
        "torch_threads": 1,
        "requests_per_s_in_process": round(ok / wall, 1),
        "cpu_us_per_request_total": round(1e6 * cpu_total / max(1, ok), 1),
        "cpu_us_per_request": per_request,
        "calls": probes.calls,
        "probed": installed,
    }


def run_profile(
    config: Path, tree: Path | None = None, requests: int = 2000, concurrency: int = 64
) -> dict[str, Any]:
    """`main` in a fresh process, on this tree's hf_runtime or `tree`'s (its own directory
    first on the path; this tree's benchmarks package after it). Request logs are dropped."""
    import subprocess

    repo = REPO_ROOT
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (tree, repo) if p is not None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.phases.path_profile", "--config", str(config),
         "--requests", str(requests), "--concurrency", str(concurrency)],
        cwd=tree or repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"path_profile failed with status {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a config serving minilm")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--route", choices=sorted(ROUTES), default="v1")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.disable(logging.NOTSET)
    result = asyncio.run(profile(args.config, args.requests, args.concurrency, args.route))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
