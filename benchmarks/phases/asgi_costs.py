"""What each BentoML middleware costs per request, in-process: CPU microseconds, no HTTP.

Builds BentoML's own ASGI app for the trivial floor service (peers/floor_service.py: one
mounted FastAPI route) the way its worker does (`service.to_asgi()`, BentoML's server logging,
prometheus_client in multiprocess mode), then calls it with a synthetic request and times the
CPU per call: with BentoML's default middlewares, with each one removed, with none, and with
hf-runtime's gateway (fast path off and on). The difference to the defaults is what that
middleware costs. Each variant runs in its own process (BentoML's metrics register once).

python -m benchmarks.asgi_costs            # every variant, a JSON summary on stdout
python -m benchmarks.asgi_costs --variant "without OpenTelemetryMiddleware"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.peers.floor import TRIVIAL_PATH

BENTOML_MIDDLEWARES = (
    "RunnerTrafficMetricsMiddleware",
    "OpenTelemetryMiddleware",
    "AccessLogMiddleware",
    "TimeoutMiddleware",
    "ContextMiddleware",
)
DEFAULTS = "bentoml defaults"
VARIANTS = (
    DEFAULTS,
    *(f"without {name}" for name in BENTOML_MIDDLEWARES),
    "no middleware (router and route only)",
    "gateway, fast path off",
    "gateway, fast path on",
)
BODY = b'{"instances": ["The quick brown fox jumps over the lazy dog."]}'


def _scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": TRIVIAL_PATH, "raw_path": TRIVIAL_PATH.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 3000),
        "headers": [(b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode())],
    }  # fmt: skip


async def _time_calls(app: Any, calls: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"the trivial route answered {message['status']}")

    for _ in range(200):
        await app(_scope(), receive, send)
    best = float("inf")
    for _ in range(5):  # the fastest of five rounds: other work only ever slows one down
        started = time.process_time()
        for _ in range(calls):
            await app(_scope(), receive, send)
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def measure_variant(variant: str, calls: int) -> dict[str, Any]:
    """In this process: build the app for `variant` and time it."""
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="asgi-costs-"))
    mode = {"gateway, fast path off": "gateway", "gateway, fast path on": "fast-path"}
    os.environ["BENCH_FLOOR_MODE"] = mode.get(variant, "bentoml")
    from bentoml._internal.log import configure_server_logging

    from benchmarks.peers.floor_service import TrivialService

    configure_server_logging()
    app = TrivialService.to_asgi(is_main=True)
    names = [m.cls.__name__ for m in app.user_middleware]
    if variant.startswith("without "):
        app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != variant[8:]]
    elif variant.startswith("no middleware"):
        app.user_middleware = []
    us = asyncio.run(_time_calls(app, calls))
    return {"variant": variant, "cpu_us_per_request": round(us, 1), "middlewares": names}


def _run_variant(variant: str, calls: int, timeout_s: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.phases.asgi_costs", "--variant", variant,
         "--calls", str(calls)],
        capture_output=True, text=True, timeout=timeout_s, check=False,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True"},
    )  # fmt: skip
    if done.returncode != 0:
        return {"variant": variant, "error": done.stderr.strip()[-2000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_all(calls: int = 3000, repeats: int = 2, timeout_s: float = 300) -> dict[str, Any]:
    """Every variant, each in a fresh process, `repeats` times in alternating order (the
    lowest time of each kept: other work on the machine only ever adds); the cost of each
    middleware is the defaults' time minus the time without it."""
    best: dict[str, dict[str, Any]] = {}
    for repeat in range(repeats):
        for variant in VARIANTS if repeat % 2 == 0 else tuple(reversed(VARIANTS)):
            row = _run_variant(variant, calls, timeout_s)
            kept = best.get(variant)
            if kept is None or row.get("cpu_us_per_request", 1e18) < kept.get(
                "cpu_us_per_request", 1e18
            ):
                best[variant] = row
    rows = [best[variant] for variant in VARIANTS]
    defaults = best[DEFAULTS].get("cpu_us_per_request")
    costs = {
        r["variant"][8:]: round(defaults - r["cpu_us_per_request"], 1)
        for r in rows
        if r["variant"].startswith("without ") and defaults and "cpu_us_per_request" in r
    }
    return {
        "calls_per_round": calls,
        "repeats": repeats,
        "middlewares": best[DEFAULTS].get("middlewares"),
        "cpu_us_per_request": {r["variant"]: r.get("cpu_us_per_request") for r in rows},
        "middleware_cost_us": costs,
        "errors": {r["variant"]: r["error"] for r in rows if "error" in r},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure_variant(args.variant, args.calls)))
    else:
        print(json.dumps(measure_all(args.calls, args.repeats), indent=2))


if __name__ == "__main__":
    main()
