"""The C load generator (hfload.c), built on demand; the Python one when there is no compiler.

On a 2-core machine the client shares the cores with the server it measures, so it has to be
nearly free: the httpx load generator spends ~1.7 ms of CPU per request (as much as the server
under test), `hfload` ~0.04 ms. `measure_level` runs one closed-loop level with whichever is
available and returns the same summary keys as `loadgen.LoadResult.summary()`, plus `tool`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.core.settings import RESULTS_DIR
from benchmarks.loadgen.pyload import BodyFactory, require_loopback, run_load

SOURCE = Path(__file__).resolve().parent / "hfload.c"
BUILD_DIR = RESULTS_DIR / "build.tmp"
DISTINCT_BODIES = 16  # bodies cycled through (workload.SENTENCES has 16)


def compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        if found := shutil.which(name):
            return found
    return None


def build_hfload(build_dir: Path = BUILD_DIR) -> Path | None:
    """The hfload binary, compiled with `cc -O2` when missing or older than its source; None
    (with a warning) when no C compiler exists or the build fails."""
    binary = build_dir / "hfload"
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    cc = compiler()
    if cc is None:
        warnings.warn("no C compiler: falling back to the Python load generator", stacklevel=2)
        return None
    build_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [cc, "-O2", "-o", str(binary), str(SOURCE)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        warnings.warn(
            f"building hfload failed, using the Python load generator: {done.stderr}", stacklevel=2
        )
        return None
    return binary


@dataclass(frozen=True)
class LevelResult:
    """One measured level: `summary()` as loadgen.LoadResult's, from either generator."""

    data: dict[str, Any]

    @property
    def requests(self) -> int:
        return int(self.data["requests"])

    @property
    def errors(self) -> int:
        return int(self.data["errors"])

    def summary(self) -> dict[str, Any]:
        return dict(self.data)


def _hfload_summary(raw: dict[str, Any]) -> dict[str, Any]:
    def ms(key: str) -> float:
        value = float(raw[key])
        return round(value, 2) if value >= 0 else float("nan")

    sample = raw.get("error_sample") or ""
    return {
        "concurrency": raw["concurrency"],
        "requests": raw["requests"],
        "errors": raw["errors"],
        "error_samples": [sample] if sample else [],
        "cut_off": raw["cut_off"],
        "wall_s": round(float(raw["wall_s"]), 3),
        "throughput_rps": round(float(raw["throughput_rps"]), 2),
        "p50_ms": ms("p50_ms"),
        "p95_ms": ms("p95_ms"),
        "p99_ms": ms("p99_ms"),
        "client_cpu_ms_per_request": round(float(raw["client_cpu_ms_per_request"]), 3),
        "tool": "hfload",
        "latency_log2_us_histogram": raw["latency_log2_us_histogram"],
    }


def _write_bodies(make_body: BodyFactory, build_dir: Path) -> list[Path]:
    build_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(DISTINCT_BODIES):
        path = build_dir / f"body-{index}.json"
        path.write_bytes(make_body(index))
        paths.append(path)
    return paths


def run_hfload(
    binary: Path,
    base_url: str,
    path: str,
    make_body: BodyFactory,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    grace_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> LevelResult:
    """One closed-loop level with hfload (blocking)."""
    require_loopback(base_url)
    url = urlsplit(base_url)
    host = "127.0.0.1" if url.hostname in ("localhost", None) else url.hostname
    argv = [
        str(binary), "--host", str(host), "--port", str(url.port or 80), "--path", path,
        "-c", str(concurrency), "-d", str(duration_s), "--warmup", str(warmup_s),
        "--grace", str(grace_s),
    ]  # fmt: skip
    for body in _write_bodies(make_body, binary.parent / f"bodies-{abs(hash(path))}"):
        argv += ["--body-file", str(body)]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    timeout = warmup_s + duration_s + grace_s + 30
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hfload failed ({done.returncode}): {done.stderr.strip()}")
    return LevelResult(_hfload_summary(json.loads(done.stdout)))


async def measure_level(
    base_url: str,
    path: str,
    make_body: BodyFactory,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    use_c: bool = True,
) -> LevelResult:
    """One level with hfload when it builds (and `use_c`), else benchmarks.loadgen."""
    binary = build_hfload() if use_c else None
    if binary is not None:
        return await asyncio.to_thread(
            run_hfload, binary, base_url, path, make_body,
            concurrency=concurrency, duration_s=duration_s, warmup_s=warmup_s,
        )  # fmt: skip
    if warmup_s > 0:
        await run_load(base_url, path, make_body, concurrency=concurrency, duration_s=warmup_s)
    result = await run_load(
        base_url, path, make_body, concurrency=concurrency, duration_s=duration_s
    )
    return LevelResult({**result.summary(), "tool": "python"})


if __name__ == "__main__":  # python -m benchmarks.loadgen.hfload: build it and say where
    print(build_hfload() or "no C compiler", file=sys.stderr)
