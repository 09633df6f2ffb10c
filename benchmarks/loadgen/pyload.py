"""An async closed-loop HTTP load generator for loopback servers.

`concurrency` workers each send one request, wait for the answer, and send the next, until
`max_requests` have been started or `duration_s` has passed (whichever comes first); requests
in flight at the deadline are allowed to finish and count, up to a hard limit after which
they are cancelled and counted as `cut_off` (so a very slow server cannot stall a run).

The client must spend as little CPU as possible: on a small machine it shares the cores with
the server it measures (the CPU it used is reported next to the numbers). So every worker has
its own httpx client with one keep-alive connection: one client shared by 64 workers spends
~10x more CPU per request in its connection pool (measured: 17 vs 1.7 ms at concurrency 64)
and becomes the bottleneck. Request bodies are prebuilt bytes.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
JSON_HEADERS = {"content-type": "application/json"}
_MAX_ERROR_SAMPLES = 5

BodyFactory = Callable[[int], bytes]


def require_loopback(base_url: str) -> None:
    """Refuse to send load anywhere but this machine."""
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only sent to loopback addresses, not {host!r} ({base_url})")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LoadResult:
    """What one closed-loop run measured. Latencies are of successful requests only."""

    concurrency: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    cut_off: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000

    def summary(self) -> dict[str, Any]:
        attempted = self.requests + self.errors
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "cut_off": self.cut_off,
            "wall_s": round(self.wall_s, 3),
            "throughput_rps": round(self.throughput, 2),
            "p50_ms": round(self.latency_ms(50), 2),
            "p95_ms": round(self.latency_ms(95), 2),
            "p99_ms": round(self.latency_ms(99), 2),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_s / max(1, attempted), 3),
        }


@dataclass
class StreamResult:
    """What one run of concurrent streaming generations measured."""

    concurrency: int
    wall_s: float
    ttft_s: list[float] = field(default_factory=list)
    stream_s: list[float] = field(default_factory=list)
    completion_tokens: int = 0  # counted as text arrives, corrected by `usage` at the end
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cut_off: int = 0

    @property
    def streams(self) -> int:
        return len(self.stream_s)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "streams": self.streams,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "cut_off": self.cut_off,
            "wall_s": round(self.wall_s, 3),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "ttft_p50_ms": round(percentile(self.ttft_s, 50) * 1000, 1),
            "ttft_p95_ms": round(percentile(self.ttft_s, 95) * 1000, 1),
            "ttft_p99_ms": round(percentile(self.ttft_s, 99) * 1000, 1),
            "stream_p50_s": round(percentile(self.stream_s, 50), 3),
            "stream_p99_s": round(percentile(self.stream_s, 99), 3),
        }


class _Budget:
    """Hands out request indices until the count or the time runs out (shared by workers)."""

    def __init__(self, max_requests: int, duration_s: float, min_requests: int = 0) -> None:
        self.max_requests = max_requests
        self.min_requests = min(min_requests, max_requests)
        self.deadline = time.perf_counter() + duration_s
        self.issued = 0

    def take(self) -> int | None:
        if self.issued >= self.max_requests:
            return None
        if self.issued >= self.min_requests and time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.issued - 1


@asynccontextmanager
async def _clients(
    base_url: str, count: int, timeout_s: float
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One single-connection client per worker; they share one TLS context (building one per
    client costs milliseconds each, and loopback HTTP never uses it anyway)."""
    tls = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url, limits=limits, timeout=timeout_s, headers=JSON_HEADERS,
                    verify=tls,
                )
            )
            for _ in range(count)
        ]  # fmt: skip


async def _run_workers(workers: list[Coroutine[Any, Any, None]], hard_limit_s: float) -> int:
    """Run every worker; cancel whatever still runs after `hard_limit_s`. Returns how many."""
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    _, pending = await asyncio.wait(tasks, timeout=hard_limit_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # a bug in the load generator itself: do not hide it
    return len(pending)


def _note_error(samples: list[str], message: str) -> None:
    if len(samples) < _MAX_ERROR_SAMPLES:
        samples.append(message[:300])


async def run_load(
    base_url: str,
    path: str,
    make_body: BodyFactory,
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int = 1_000_000,
    timeout_s: float = 60.0,
    grace_s: float = 30.0,
) -> LoadResult:
    """POST `make_body(i)` to `path` from `concurrency` workers; time each answer.

    Requests still unanswered `grace_s` after the deadline are cancelled (`cut_off`).
    """
    require_loopback(base_url)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    result = LoadResult(concurrency=concurrency, wall_s=0.0)

    async def worker(client: httpx.AsyncClient) -> None:
        while (index := budget.take()) is not None:
            body = make_body(index)
            started = time.perf_counter()
            try:
                response = await client.post(path, content=body)
            except httpx.HTTPError as exc:
                result.errors += 1
                _note_error(result.error_samples, f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            if response.status_code == 200:
                result.latencies_s.append(elapsed)
            else:
                result.errors += 1
                _note_error(result.error_samples, f"{response.status_code}: {response.text}")

    async with _clients(base_url, concurrency, timeout_s) as clients:
        # The clock starts now, not before the clients were built (that takes a while).
        budget = _Budget(max_requests, duration_s)
        cpu_start = time.process_time()
        started = time.perf_counter()
        workers = [worker(client) for client in clients]
        result.cut_off = await _run_workers(workers, duration_s + grace_s)
        result.wall_s = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - cpu_start
    return result


def _chunk_payload(line: str) -> dict[str, Any] | None:
    """The JSON object of one SSE `data:` line; None for blank lines, comments and [DONE]."""
    if not line.startswith("data:"):
        return None
    data = line[len("data:") :].strip()
    if not data or data == "[DONE]":
        return None
    payload = json.loads(data)
    return payload if isinstance(payload, dict) else None


def _has_text(payload: dict[str, Any]) -> bool:
    for choice in payload.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or choice.get("text"):
            return True
    return False


async def _one_stream(
    client: httpx.AsyncClient, path: str, body: bytes, result: StreamResult
) -> None:
    """Send one streaming request, recording into `result` as data arrives (so a stream that
    is cut off still counts): its time to first text, and its tokens. One text chunk counts as
    one token while streaming; the final `usage` chunk, when the server sends one, corrects it.
    """
    started = time.perf_counter()
    first_text_at: float | None = None
    text_chunks = 0
    async with client.stream("POST", path, content=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code}: {response.text}")
        async for line in response.aiter_lines():
            payload = _chunk_payload(line)
            if payload is None:
                continue
            if "error" in payload:
                raise RuntimeError(f"error event: {payload['error']}")
            if _has_text(payload):
                text_chunks += 1
                result.completion_tokens += 1
                if first_text_at is None:
                    first_text_at = time.perf_counter()
                    result.ttft_s.append(first_text_at - started)
            usage = payload.get("usage")
            if isinstance(usage, dict) and "completion_tokens" in usage:
                result.completion_tokens += int(usage["completion_tokens"]) - text_chunks
                text_chunks = int(usage["completion_tokens"])
    if first_text_at is None:
        raise RuntimeError("the stream ended without any text")


async def run_streams(
    base_url: str,
    path: str,
    make_body: BodyFactory,
    *,
    concurrency: int,
    duration_s: float,
    max_streams: int = 1_000_000,
    timeout_s: float = 300.0,
    hard_limit_s: float = 300.0,
) -> StreamResult:
    """Keep `concurrency` streaming generations open; every worker starts at least one.

    Streams still open `hard_limit_s` after the start are cancelled (`cut_off`); the tokens
    they had produced still count, so tokens/s stays a rate over the measured wall time.
    """
    require_loopback(base_url)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    result = StreamResult(concurrency=concurrency, wall_s=0.0)

    async def worker(client: httpx.AsyncClient) -> None:
        while (index := budget.take()) is not None:
            started = time.perf_counter()
            try:
                await _one_stream(client, path, make_body(index), result)
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                result.errors += 1
                _note_error(result.error_samples, f"{type(exc).__name__}: {exc}")
                continue
            result.stream_s.append(time.perf_counter() - started)

    async with _clients(base_url, concurrency, timeout_s) as clients:
        budget = _Budget(max_streams, duration_s, min_requests=concurrency)
        started = time.perf_counter()
        workers = [worker(client) for client in clients]
        result.cut_off = await _run_workers(workers, hard_limit_s)
        result.wall_s = time.perf_counter() - started
    return result
