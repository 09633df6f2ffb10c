"""The admission rule both generation engines follow: max_num_seqs + max_queue_size sequences
in flight, counted synchronously (so a concurrent burst cannot slip past the check)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hf_runtime.decoding.admission import AdmissionLimit
from hf_runtime.errors import Overloaded


def limit(max_num_seqs: int = 2, max_queue_size: int = 3) -> AdmissionLimit:
    return AdmissionLimit("m", max_num_seqs=max_num_seqs, max_queue_size=max_queue_size)


def test_admits_up_to_capacity_then_refuses_with_a_429_message() -> None:
    rule = limit()
    tickets = [rule.reserve() for _ in range(5)]
    assert (rule.capacity, rule.in_flight) == (5, 5)
    with pytest.raises(Overloaded) as error:
        rule.reserve()
    assert error.value.message == (
        "model m is overloaded: 5 sequences are running or waiting "
        "(max_num_seqs 2 + max_queue_size 3); retry later"
    )
    assert rule.stats() == {"running": 0, "waiting": 5, "rejected_requests": 1}
    tickets[0].release()
    rule.reserve()  # the freed place is available at once
    assert rule.in_flight == 5


def test_release_is_idempotent_and_running_is_tracked() -> None:
    rule = limit()
    first, second = rule.reserve(), rule.reserve()
    first.start()
    first.start()
    assert first.started and not second.started
    assert rule.stats() == {"running": 1, "waiting": 1, "rejected_requests": 0}
    first.release()
    first.release()
    first.start()  # after release: no effect
    assert rule.stats() == {"running": 0, "waiting": 1, "rejected_requests": 0}
    second.release()
    assert rule.in_flight == 0


async def test_a_concurrent_burst_is_cut_at_capacity() -> None:
    """The vLLM bug: each request checked, then awaited, then registered. Reserving before the
    first await admits exactly `capacity` of a burst, whatever the interleaving."""
    rule = limit()
    gate = asyncio.Event()

    async def sequence() -> None:
        ticket = rule.reserve()
        try:
            await gate.wait()
        finally:
            ticket.release()

    tasks = [asyncio.create_task(sequence()) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, Overloaded) for r in results) == 15
    assert sum(r is None for r in results) == 5
    assert rule.stats() == {"running": 0, "waiting": 0, "rejected_requests": 15}


def test_threads_racing_for_places_get_exactly_capacity() -> None:
    rule = limit(max_num_seqs=7, max_queue_size=13)
    start = threading.Barrier(8)
    admitted: list[int] = []

    def worker() -> None:
        start.wait()
        count = 0
        for _ in range(50):
            try:
                rule.reserve()
                count += 1
            except Overloaded:
                pass
        admitted.append(count)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 20 == rule.in_flight
    assert rule.rejected == 8 * 50 - 20
