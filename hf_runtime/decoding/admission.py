"""One admission rule for generation on every backend: a bounded count of in-flight sequences.

A sequence is in flight from the moment `generate` accepts it until it ends, however it ends
(finished, failed, or aborted by a client disconnect). Capacity is `max_num_seqs` (decoding
together) + `max_queue_size` (waiting for a place); beyond it a sequence is refused with
Overloaded (429).

The check and the count happen together, synchronously and under a lock, before the engine
awaits anything. A check that reads the engine's own count and registers the sequence only
after an `await` lets every request of a concurrent burst pass before any is counted (measured
on vLLM: 256 requests x n=16 all accepted against a capacity of 272).
"""

from __future__ import annotations

import threading

from hf_runtime.errors import Overloaded


class AdmissionLimit:
    """In-flight sequences of one engine against `max_num_seqs + max_queue_size`.

    Thread-safe: engines may be driven from several event loops (tests) or threads.
    `running` counts tickets marked started, for engines that cannot ask their scheduler.
    """

    def __init__(self, name: str, *, max_num_seqs: int, max_queue_size: int) -> None:
        self.name = name
        self.max_num_seqs = max_num_seqs
        self.max_queue_size = max_queue_size
        self._lock = threading.Lock()
        self._in_flight = 0
        self._running = 0
        self._rejected = 0

    @property
    def capacity(self) -> int:
        return self.max_num_seqs + self.max_queue_size

    def reserve(self) -> AdmissionTicket:
        """Count one more sequence, or raise Overloaded when the engine is full."""
        with self._lock:
            in_flight = self._in_flight
            if in_flight >= self.capacity:
                self._rejected += 1
            else:
                self._in_flight += 1
                return AdmissionTicket(self)
        raise Overloaded(
            f"model {self.name} is overloaded: {in_flight} sequences are running or waiting "
            f"(max_num_seqs {self.max_num_seqs} + max_queue_size {self.max_queue_size}); "
            "retry later"
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def running(self) -> int:
        return self._running

    @property
    def rejected(self) -> int:
        return self._rejected

    def stats(self) -> dict[str, int]:
        """running / waiting (in flight, not yet started) / rejected_requests, for /metrics."""
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._in_flight - self._running,
                "rejected_requests": self._rejected,
            }

    def _release(self, started: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if started:
                self._running -= 1

    def _start(self) -> None:
        with self._lock:
            self._running += 1


class AdmissionTicket:
    """One admitted sequence's place. `release` is idempotent: call it in a `finally`."""

    __slots__ = ("_limit", "_released", "_started")

    def __init__(self, limit: AdmissionLimit) -> None:
        self._limit = limit
        self._started = False
        self._released = False

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """The engine began working on the sequence (it moves from waiting to running)."""
        if not self._started and not self._released:
            self._started = True
            self._limit._start()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limit._release(self._started)
