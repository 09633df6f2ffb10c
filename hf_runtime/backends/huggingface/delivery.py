"""Handing the engine thread's results to the asyncio consumers, one wake-up per loop.

`loop.call_soon_threadsafe` writes to the loop's self-pipe on every call: one system call and
one wake-up of the event loop per row per step when each delta is sent alone. The engine
collects a step's deltas in an `Outbox` and sends each event loop ONE callback that fills all
of its consumers' queues (every stream of a server worker shares that worker's loop).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Consumer(Protocol):
    """What the outbox needs of a sequence: its consumer's loop and queue."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    aborted: bool


def _deliver(items: list[tuple[asyncio.Queue[Any], Any]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)


class Outbox:
    """Items for consumers on any number of event loops; `flush` sends them (engine thread)."""

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[Consumer, Any]]] = {}

    def put(self, consumer: Consumer, item: Any) -> None:
        self._items.setdefault(consumer.loop, []).append((consumer, item))

    def flush(self) -> None:
        items, self._items = self._items, {}
        for loop, entries in items.items():
            try:
                loop.call_soon_threadsafe(_deliver, [(c.queue, item) for c, item in entries])
            except RuntimeError:  # the consumers' loop is closed: nobody is listening
                for consumer, _ in entries:
                    consumer.aborted = True
