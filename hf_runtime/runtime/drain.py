"""Graceful drain on SIGTERM, which Kubernetes sends on every rollout and scale-down.

On the first SIGTERM: readiness turns false and the gateway answers new protocol requests 503,
while requests and streams already in flight run to their end, for up to `drain_timeout`
seconds. Then the server's own SIGTERM handling (uvicorn's graceful shutdown) takes over. A
second SIGTERM skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("hf_runtime")

POLL_SECONDS = 0.05


class Drainer:
    def __init__(self, in_flight: Callable[[], int], timeout: float) -> None:
        self._in_flight = in_flight
        self.timeout = timeout
        self.draining = False
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Take over SIGTERM (chaining to the handler installed before). Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = loop
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.draining:  # a second SIGTERM: stop waiting
            if self._task is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)
            self._chain(signum, frame)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.start, signum)

    def start(self, signum: int = signal.SIGTERM) -> None:
        """Stop admitting, wait for in-flight work (on the loop), then hand over."""
        if self.draining:
            return
        self.draining = True
        logger.info(
            "SIGTERM: draining; %d request(s) in flight, waiting up to %.0f s",
            self._in_flight(), self.timeout,
        )  # fmt: skip
        self._task = asyncio.get_running_loop().create_task(self._wait_then_exit(signum))

    async def _wait_then_exit(self, signum: int) -> None:
        deadline = time.monotonic() + self.timeout
        # Polled: requests end in many places; 50 ms of latency on a shutdown is nothing.
        while self._in_flight() > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        left = self._in_flight()
        if left:
            logger.warning("drain timeout: %d request(s) still in flight are cut off", left)
        else:
            logger.info("drained: no request in flight; shutting down")
        self._chain(signum, None)

    def _chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default action: terminate
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
