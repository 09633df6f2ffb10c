"""Graceful drain on SIGTERM, which Kubernetes sends on every rollout and scale-down.

On the first SIGTERM: readiness turns false and the gateway answers new protocol requests 503,
while requests and streams already in flight run to their end, for up to `drain_timeout`
seconds. What is still running then is cut off (`cut_off`: each stream ends the protocol's
way, each open request is answered 503), and the server's own SIGTERM handling (uvicorn's
graceful shutdown) takes over; should that not end the process within EXIT_GRACE seconds (an
engine that does not stop), it is ended anyway. A second SIGTERM skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from hf_runtime.runtime.startup import kill_children

logger = logging.getLogger("hf_runtime")

POLL_SECONDS = 0.05
CUT_OFF_GRACE = 2.0  # seconds for cut-off requests to send their last bytes
EXIT_GRACE = 5.0  # seconds from the hand-over to the process's end, whatever still runs


class Drainer:
    def __init__(
        self,
        in_flight: Callable[[], int],
        timeout: float,
        cut_off: Callable[[str], Awaitable[None]] | None = None,
        exit_grace: float | None = None,
    ) -> None:
        """`cut_off(reason)` ends what still runs at the timeout; `exit_grace` (the server's:
        EXIT_GRACE) ends the process that long after the hand-over, None: never."""
        self._in_flight = in_flight
        self._cut_off = cut_off
        self._exit_grace = exit_grace
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
            logger.warning(
                "drain timeout (%.0f s): %d request(s) still in flight are cut off: streams end "
                "with an error event, other requests get 503", self.timeout, left,
            )  # fmt: skip
            await self._cut_off_all()
        else:
            logger.info("drained: no request in flight; shutting down")
        if self._exit_grace is not None:
            exit_after(self._exit_grace)
        self._chain(signum, None)

    async def _cut_off_all(self) -> None:
        if self._cut_off is None:
            return
        reason = (
            f"the server is shutting down: this request was still running when the drain "
            f"timeout ({self.timeout:g} s, server.drain_timeout) passed; retry it"
        )
        await self._cut_off(reason)
        deadline = time.monotonic() + CUT_OFF_GRACE
        while self._in_flight() > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)

    def _chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default action: terminate
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


def exit_after(seconds: float) -> None:
    """End the process `seconds` from now unless it ended by itself (a daemon timer: it dies
    with the process). The shutdown after a drain closes the models; an engine stuck in its
    own shutdown must not keep a terminating pod (or a laptop's `bentoml serve`) alive."""

    def end() -> None:
        logger.warning("still running %.0f s after the drain: exiting now", seconds)
        kill_children()
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()
