"""Cross-request batching of encoder work: one batcher (and one inference thread) per model.

Every protocol's requests submit an `EncoderJob`: the texts (or pairs, or ready encodings) of
one request and what to do with them. A runner task on the event loop takes the jobs waiting,
oldest first, up to `max_batch_size` texts (a larger single request is taken alone), and hands
them to the model's inference thread in ONE hop, which tokenizes, runs the forward passes and
postprocesses the whole batch (hf_runtime.runtime.batch_hop). The event loop only sets each
job's future. While a hop runs, new jobs accumulate for the next; there is no artificial
delay: an idle batcher runs a lone request at once.

Abandoned work is dropped: when a request is cancelled (its client disconnected or cancelled
the gRPC call), its job leaves the queue at once, so admission counts only live work, and a
hop under way skips the job's remaining forward passes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.backends import ForwardItem
from hf_runtime.config import BatchingConfig
from hf_runtime.errors import InvalidInput, ModelNotReady, Overloaded
from hf_runtime.observability.metrics import observe_queue_time
from hf_runtime.runtime.batch_hop import (
    BatchHop,
    EncoderJob,
    JobWork,
    RunBatch,
    TokenizeBatch,
    length_bucket,
)

logger = logging.getLogger("hf_runtime")
# Event-loop turns a request that finds the queue full waits before its 429, so cancellations
# already on their way free their places first (see EncoderBatcher._room_for).
SETTLE_TURNS = 8


@dataclass
class _Waiting:
    job: EncoderJob
    future: asyncio.Future[Any]
    queued_at: float  # time.perf_counter() at submit
    # Set (on the event loop) when the request is cancelled; the hop reads it between passes.
    abandoned: threading.Event = field(default_factory=threading.Event)
    queued: bool = True  # still in the batcher's queue (not yet taken into a hop)


class EncoderBatcher:
    """Batches EncoderJobs across requests and runs them in one inference thread.

    `run_batch` is the blocking forward (items -> one output per item, in order);
    `tokenize_batch` the blocking tokenizer for jobs that carry texts. With `exact_lengths`
    only items of identical padded length share a pass (needed when extra padding would change
    outputs, e.g. left-padding tokenizers). `backend` labels the queue time metric.
    Use from one event loop at a time.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        batching: BatchingConfig,
        *,
        tokenize_batch: TokenizeBatch | None = None,
        name: str = "model",
        backend: str = "huggingface",
        exact_lengths: bool = False,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = batching.max_batch_size
        self.max_batch_tokens = batching.max_batch_tokens
        self.max_queue_size = batching.max_queue_size
        self.name = name
        self.backend = backend
        # Through self._run_batch at every pass: a test may wrap it after construction.
        self._batch_hop = BatchHop(
            lambda items: self._run_batch(items),
            tokenize_batch,
            max_batch_size=batching.max_batch_size,
            max_batch_tokens=batching.max_batch_tokens,
            exact_lengths=exact_lengths,
            name=name,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"hf-runtime-infer-{name}"
        )
        self._waiting: deque[_Waiting] = deque()
        self._waiting_items = 0
        self._running_items = 0  # items of the hop under way (0 between hops)
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ------------------------------------------------------------------ public

    async def submit(self, items: Sequence[ForwardItem]) -> list[Any]:
        """Queue one request's ready items; returns their outputs in order (see run)."""
        if not items:
            return []
        return list(await self.run(EncoderJob(list(items))))

    async def run(self, job: EncoderJob) -> Any:
        """Queue one request's job; returns what its `finish` returns.

        Raises Overloaded when the queue cannot take it now, InvalidInput when it never could
        (more texts than max_queue_size), ModelNotReady after close(), and whatever its
        tokenizing, `prepare`, forward pass or `finish` raised.
        """
        if self._closed:
            raise ModelNotReady(self.name)
        if job.size > self.max_queue_size:  # could never fit: a client error, not a 429
            raise InvalidInput(
                f"this request has {job.size} texts; model {self.name} takes at most "
                f"{self.max_queue_size} per request (max_queue_size): split it"
            )
        if not await self._room_for(job.size):
            self._batch_hop.count("rejected_requests")
            raise Overloaded(
                f"model {self.name} is overloaded: {self._waiting_items} texts are waiting and "
                f"this request adds {job.size} (max_queue_size {self.max_queue_size}); "
                "retry later"
            )
        loop = asyncio.get_running_loop()
        entry = _Waiting(job, loop.create_future(), time.perf_counter())
        self._waiting.append(entry)
        self._waiting_items += job.size
        entry.future.add_done_callback(lambda _: self._drop_if_abandoned(entry))
        self._ensure_runner(loop)
        # A cancelled request cancels its future: see _drop_if_abandoned.
        return await entry.future

    async def _room_for(self, size: int) -> bool:
        """Whether `size` more texts fit in the queue, once what the server has already been
        told is taken into account: a full queue is looked at again after SETTLE_TURNS turns
        of the event loop (stopping as soon as they fit). A client's disconnect that arrived
        before this request takes a few turns to free its places (the transport's
        connection_lost, the watcher's receive, the cancellation, the future's callback): a
        burst of requests whose clients have just left must not turn away the next live one.
        Only a request that would be refused waits these turns (microseconds)."""
        for _ in range(SETTLE_TURNS):
            if self._waiting_items + size <= self.max_queue_size:
                return True
            await asyncio.sleep(0)
            if self._closed:
                raise ModelNotReady(self.name)
        return self._waiting_items + size <= self.max_queue_size

    def stats(self) -> dict[str, int]:
        """Counters since start (forward passes run, items, largest pass, failed passes, 429s,
        tokens) and the state now: items in the hop under way (running) and queued (waiting)."""
        waiting = self._waiting_items
        counts = self._batch_hop.counts()
        return {
            "running": self._running_items,
            "waiting": waiting,
            **counts,
            "queue_depth": waiting,  # = waiting; kept for existing readers
        }

    async def close(self) -> None:
        """Stop taking work; waiting requests get ModelNotReady; the running hop finishes."""
        self._closed = True
        for entry in self._waiting:
            entry.queued = False
            if not entry.future.done():
                entry.future.set_exception(ModelNotReady(self.name))
        self._waiting.clear()
        self._waiting_items = 0
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    # ------------------------------------------------------------------ runner (event loop)

    def _ensure_runner(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            # A new event loop (e.g. a restarted server): futures of the old loop are dead.
            for entry in self._waiting:
                entry.queued = entry.future.get_loop() is loop
            self._waiting = deque(e for e in self._waiting if e.queued)
            self._waiting_items = sum(e.job.size for e in self._waiting)
            self._runner = None
            self._loop = loop
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name=f"hf-runtime-batcher-{self.name}")

    def _drop_if_abandoned(self, entry: _Waiting) -> None:
        """A cancelled job leaves the queue now (not when the runner reaches it), so a flood of
        abandoned requests never blocks admission; in a hop, its remaining passes are skipped."""
        if not entry.future.cancelled():
            return
        entry.abandoned.set()
        if entry.queued:
            entry.queued = False
            self._waiting.remove(entry)
            self._waiting_items -= entry.job.size

    def _take(self) -> list[_Waiting]:
        """The oldest waiting jobs up to max_batch_size texts (at least one job)."""
        taken: list[_Waiting] = []
        count = 0
        while self._waiting:
            entry = self._waiting[0]
            if taken and count + entry.job.size > self.max_batch_size:
                break
            taken.append(self._waiting.popleft())
            entry.queued = False
            self._waiting_items -= entry.job.size
            count += entry.job.size
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._take()
            if not batch:
                return
            self._running_items = sum(entry.job.size for entry in batch)
            try:
                work = await loop.run_in_executor(self._executor, self._hop, batch)
            except asyncio.CancelledError:
                for entry in batch:
                    entry.future.cancel()
                raise
            except Exception as exc:  # a bug in the hop itself: fail this batch, keep serving
                logger.exception("model %s: a batch of %d jobs failed", self.name, len(batch))
                work = [JobWork(entry.job, error=exc) for entry in batch]
            finally:
                self._running_items = 0
            for entry, done in zip(batch, work, strict=True):
                if entry.future.done():
                    continue
                if done.error is not None:
                    entry.future.set_exception(done.error)
                else:
                    entry.future.set_result(done.result)

    # ------------------------------------------------------------------ the hop (inference thread)

    def _hop(self, batch: list[_Waiting]) -> list[JobWork]:
        """Blocking: tokenize, prepare, forward and finish every job of `batch`."""
        started = time.perf_counter()
        for entry in batch:  # queue time per item, at the moment the hop really starts
            waited = started - entry.queued_at
            for _ in range(entry.job.size):
                observe_queue_time(self.name, self.backend, waited)
        work = [JobWork(entry.job, entry.abandoned) for entry in batch]
        self._batch_hop.run(work)
        return work


__all__ = ["EncoderBatcher", "EncoderJob", "length_bucket"]
