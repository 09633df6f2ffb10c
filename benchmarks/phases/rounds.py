"""Paired rounds: the issue's ratios, with both sides measured in alternating windows.

A shared virtual machine's speed drifts by tens of percent over minutes (the same raw
`generate()` ran at 47 and 78 tokens/s within one process, minutes apart). Measuring one
server after the other turns that drift into the ratio. Here every side of a comparison is
up at the same time (idle servers cost no CPU) and each round measures each side for one
window, in rotating order; every round gives one ratio per pair and the median round is
reported, with all of them. The sequential runs (phases/encoder.py, generation.py) still give
the absolute tables; the targets use these medians where a pair was measured. The pairs
themselves: phases/encoder_paired.py and generation_paired.py.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.core.machine import log
from benchmarks.core.settings import Settings
from benchmarks.peers.servers import SERVER_START_TIMEOUT_S, RunningServer, serve_process

Metrics = dict[str, Any]  # numbers, and a window's CPU breakdown under "cpu"


@dataclass(frozen=True)
class Side:
    name: str
    measure: Callable[[], Metrics]  # one window


@dataclass(frozen=True)
class Pair:
    """`ours` against `theirs` on `metric`; ratios are ours / theirs, or theirs / ours when
    lower is better, so that above 1 always means hf-runtime is ahead."""

    ours: str
    theirs: str
    metric: str
    target: str  # the evaluate_targets name this pair's median replaces
    goal: float  # the median must reach it
    lower_is_better: bool = False


def alternate(sides: Sequence[Side], rounds: int) -> dict[str, list[Metrics]]:
    """Each side's metrics per round; round r starts at side r (mod len), so no side is
    always the first one after a pause."""
    values: dict[str, list[Metrics]] = {side.name: [] for side in sides}
    for index in range(rounds):
        shift = index % len(sides)
        for side in [*sides[shift:], *sides[:shift]]:
            values[side.name].append(side.measure())
        log(f"  paired round {index + 1}: " + "; ".join(
            f"{name} {values[name][-1]}" for name in values
        ))  # fmt: skip
    return values


def summarize(pair: Pair, values: dict[str, list[Metrics]]) -> dict[str, Any]:
    ours = [m.get(pair.metric) for m in values[pair.ours]]
    theirs = [m.get(pair.metric) for m in values[pair.theirs]]
    ratios = [
        round((b / a) if pair.lower_is_better else (a / b), 3)
        for a, b in zip(ours, theirs, strict=True)
        if a and b
    ]
    median = round(statistics.median(ratios), 2) if ratios else None
    return {
        "ours": pair.ours, "theirs": pair.theirs, "metric": pair.metric,
        "ours_values": ours, "theirs_values": theirs, "ratios": ratios, "median": median,
        "target": pair.target, "goal": pair.goal,
        "met": None if median is None else median >= pair.goal,
    }  # fmt: skip


class Startable(Protocol):
    """What all_up needs of phases.EncoderServer and generation.GenerationServer (frozen
    dataclasses, hence read-only here)."""

    @property
    def name(self) -> str: ...
    @property
    def command(self) -> Callable[[int], list[str]]: ...
    @property
    def env(self) -> dict[str, str]: ...
    @property
    def fail_marker(self) -> str | None: ...
    @property
    def cwd(self) -> Path | None: ...
    @property
    def ready_path(self) -> str: ...


@contextlib.contextmanager
def all_running(
    s: Settings, servers: Sequence[Startable], warm: Callable[[str], object] | None = None
) -> Iterator[dict[str, RunningServer]]:
    """Every server started and ready (then `warm(url)` once), by name; all stopped after.
    Each records its Python threads (for the CPU breakdown: loadgen/cpu_window.py)."""
    with contextlib.ExitStack() as stack:
        running: dict[str, RunningServer] = {}
        for server in servers:
            up = stack.enter_context(serve_process(
                server.command, log_path=s.out_dir / "logs.tmp" / f"paired-{server.name}.log",
                env=server.env, ready_path=server.ready_path, ready_timeout=SERVER_START_TIMEOUT_S,
                fail_marker=server.fail_marker, cwd=server.cwd,
                thread_names_dir=s.out_dir / "logs.tmp" / f"threads-{_file_name(server.name)}",
            ))  # fmt: skip
            if warm is not None:
                warm(up.url)
            running[server.name] = up
        started = time.monotonic()
        yield running
        log(f"  paired rounds took {time.monotonic() - started:.0f} s")


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@contextlib.contextmanager
def all_up(
    s: Settings, servers: Sequence[Startable], warm: Callable[[str], object] | None = None
) -> Iterator[dict[str, str]]:
    """all_running's servers as name -> URL."""
    with all_running(s, servers, warm) as running:
        yield {name: up.url for name, up in running.items()}
