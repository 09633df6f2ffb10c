"""SIGTERM drains: stop admitting, wait for in-flight requests, then hand over to the server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from hf_runtime.runtime.drain import Drainer


@pytest.fixture
def previous_handler() -> Iterator[list[int]]:
    calls: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    original = signal.signal(signal.SIGTERM, record)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, original)


async def _until(condition: object, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


async def test_waits_for_in_flight_requests_then_chains(previous_handler: list[int]) -> None:
    in_flight = [2]
    drainer = Drainer(lambda: in_flight[0], timeout=10)
    assert drainer.install(asyncio.get_running_loop())
    os.kill(os.getpid(), signal.SIGTERM)
    await _until(lambda: drainer.draining)
    await asyncio.sleep(0.2)
    assert previous_handler == []  # still draining
    in_flight[0] = 0
    await _until(lambda: previous_handler == [signal.SIGTERM])


async def test_timeout_cuts_the_wait(previous_handler: list[int]) -> None:
    drainer = Drainer(lambda: 1, timeout=0.1)
    drainer.install(asyncio.get_running_loop())
    drainer.start()
    await _until(lambda: previous_handler == [signal.SIGTERM])


async def test_a_second_sigterm_skips_the_wait(previous_handler: list[int]) -> None:
    drainer = Drainer(lambda: 1, timeout=60)
    drainer.install(asyncio.get_running_loop())
    os.kill(os.getpid(), signal.SIGTERM)
    await _until(lambda: drainer.draining)
    os.kill(os.getpid(), signal.SIGTERM)
    await _until(lambda: previous_handler == [signal.SIGTERM])


async def test_timeout_cuts_off_what_still_runs_then_chains(previous_handler: list[int]) -> None:
    in_flight = [3]
    reasons: list[str] = []

    async def cut_off(reason: str) -> None:
        reasons.append(reason)
        in_flight[0] = 0  # the gateway ends them

    drainer = Drainer(lambda: in_flight[0], timeout=0.1, cut_off=cut_off)
    drainer.install(asyncio.get_running_loop())
    drainer.start()
    await _until(lambda: previous_handler == [signal.SIGTERM])
    (reason,) = reasons
    assert "drain timeout (0.1 s, server.drain_timeout)" in reason


async def test_nothing_is_cut_off_when_drained(previous_handler: list[int]) -> None:
    reasons: list[str] = []

    async def cut_off(reason: str) -> None:
        reasons.append(reason)

    drainer = Drainer(lambda: 0, timeout=5, cut_off=cut_off)
    drainer.install(asyncio.get_running_loop())
    drainer.start()
    await _until(lambda: previous_handler == [signal.SIGTERM])
    assert reasons == []
