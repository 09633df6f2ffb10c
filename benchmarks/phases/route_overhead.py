"""hf-runtime's own CPU per encoder request on the event loop, in-process, without a model:
the gateway, the protocol app and the data plane over the protocol tests' fake models (no
tokenizing, no forward), each route called straight through ASGI from 8 tasks.

The fakes answer at once, so what is timed is the per-request path itself: the fastest of five
rounds of `--requests` requests, in CPU microseconds per request. It imports nothing of the
benchmarks, so it runs as a file against any tree (one checked out at an older commit too):
cd <tree> && PYTHONPATH=<tree> python <this file> --route v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

SENTENCE = "The quick brown fox jumps over the lazy dog."
# --route: (path, body) for the fakes' models (tests/protocols/conftest.make_fake_registry).
ROUTES: dict[str, tuple[str, Any]] = {
    "v1": ("/v1/models/clf:predict", {"instances": [SENTENCE]}),
    "embeddings": ("/v1/embeddings", {"model": "embed", "input": SENTENCE}),
    "openai-embeddings": ("/openai/v1/embeddings", {"model": "embed", "input": SENTENCE}),
    "v2": (
        "/v2/models/clf/infer",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [SENTENCE]}]},
    ),
    "score": ("/v1/score", {"model": "rerank", "text_1": SENTENCE, "text_2": SENTENCE}),
    "rerank": ("/v1/rerank", {"model": "rerank", "query": SENTENCE, "documents": [SENTENCE]}),
}
TASKS = 8
ROUNDS = 5


async def post_once(app: Any, path: str, body: bytes) -> int:
    """One JSON POST through `app`'s ASGI interface; the response's status."""
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the client stays: the disconnect watcher waits
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 3000),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    await app(scope, receive, send)
    return status


async def measure(route: str, requests: int) -> dict[str, Any]:
    from tests.protocols.conftest import make_fake_registry
    from tests.served_app import make_served_app

    app = make_served_app(make_fake_registry())
    path, payload = ROUTES[route]
    body = json.dumps(payload).encode()

    async def worker(count: int) -> None:
        for _ in range(count):
            status = await post_once(app, path, body)
            if status != 200:
                raise RuntimeError(f"{route} answered {status}")

    await asyncio.gather(*(worker(50) for _ in range(TASKS)))  # warm up
    best = float("inf")
    for _ in range(ROUNDS):  # other work on the machine only ever adds
        started = time.process_time()
        await asyncio.gather(*(worker(requests // TASKS) for _ in range(TASKS)))
        best = min(best, (time.process_time() - started) / (requests // TASKS * TASKS))
    return {
        "route": route,
        "requests_per_round": requests,
        "cpu_us_per_request": round(best * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=sorted(ROUTES), default="v1")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.route, args.requests))))


if __name__ == "__main__":
    main()
