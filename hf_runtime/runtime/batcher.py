"""Cross-request batching of encoder forward passes: one batcher (and one thread) per model.

Every protocol's requests submit tokenized items here. A runner task on the event loop takes
whatever is waiting, groups it by padded length, and runs each group as ONE forward pass in
the model's dedicated inference thread; while that runs, new items accumulate for the next
pass. There is no artificial delay: an idle batcher runs a lone request at once.

Grouping: the oldest waiting item picks the length bucket (powers of two, everything up to
16 tokens shares one), and the batch takes the waiting items of that bucket in arrival order
up to `max_batch_size` texts and `max_batch_tokens` padded tokens. Short texts thus never pay
for a long one's padding, and the oldest item always goes next (no starvation).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hf_runtime.backends import ForwardItem
from hf_runtime.config import BatchingConfig
from hf_runtime.errors import InvalidInput, ModelNotReady, Overloaded
from hf_runtime.observability.metrics import observe_queue_time

logger = logging.getLogger("hf_runtime")

SMALLEST_BUCKET_TOKENS = 16

RunBatch = Callable[[list[ForwardItem]], Sequence[Any]]


@dataclass
class _Waiting:
    item: ForwardItem
    future: asyncio.Future[Any]
    queued_at: float  # time.perf_counter() at submit


def length_bucket(length: int) -> int:
    """ceil(log2(length)), with every length up to SMALLEST_BUCKET_TOKENS in one bucket:
    (16, 32] share a bucket, (32, 64] the next, and so on."""
    return (max(length, SMALLEST_BUCKET_TOKENS) - 1).bit_length()


class EncoderBatcher:
    """Batches ForwardItems across requests and runs them in one inference thread.

    `run_batch` is the blocking forward (items -> one output per item, in order). With
    `exact_lengths` only items of identical padded length share a pass (needed when extra
    padding would change outputs, e.g. left-padding tokenizers). `backend` labels the queue
    time metric ("huggingface" or "vllm": whichever backend runs `run_batch`).
    Use from one event loop at a time.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        batching: BatchingConfig,
        *,
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
        self._exact_lengths = exact_lengths
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"hf-runtime-infer-{name}"
        )
        self._waiting: list[_Waiting] = []
        self._running_items = 0  # items of the forward pass under way (0 between passes)
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stats_lock = threading.Lock()
        self._batches = 0
        self._items = 0
        self._largest_batch = 0
        self._failed_batches = 0
        self._rejected_requests = 0
        self._padded_tokens = 0
        self._real_tokens = 0

    # ------------------------------------------------------------------ public

    async def submit(self, items: Sequence[ForwardItem]) -> list[Any]:
        """Queue one request's items; returns their outputs in order.

        Raises Overloaded when the queue cannot take them now, InvalidInput when it never
        could (more items than max_queue_size), ModelNotReady after close(),
        and the forward pass's exception if the batch holding any of them failed.
        """
        if self._closed:
            raise ModelNotReady(self.name)
        if not items:
            return []
        if len(items) > self.max_queue_size:  # could never fit: a client error, not a 429
            raise InvalidInput(
                f"this request has {len(items)} texts; model {self.name} takes at most "
                f"{self.max_queue_size} per request (max_queue_size): split it"
            )
        if len(self._waiting) + len(items) > self.max_queue_size:
            with self._stats_lock:
                self._rejected_requests += 1
            raise Overloaded(
                f"model {self.name} is overloaded: {len(self._waiting)} texts are waiting and "
                f"this request adds {len(items)} (max_queue_size {self.max_queue_size}); "
                "retry later"
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        entries = [_Waiting(item, loop.create_future(), now) for item in items]
        self._waiting.extend(entries)
        self._ensure_runner(loop)
        # A cancelled request cancels its futures; the runner then skips those items.
        return list(await asyncio.gather(*(entry.future for entry in entries)))

    def stats(self) -> dict[str, int]:
        """Counters since start (batches run, items, largest batch, failures, 429s, tokens) and
        the state now: items in the pass under way (running) and queued (waiting)."""
        waiting = len(self._waiting)
        with self._stats_lock:
            return {
                "running": self._running_items,
                "waiting": waiting,
                "batches": self._batches,
                "items": self._items,
                "largest_batch": self._largest_batch,
                "failed_batches": self._failed_batches,
                "rejected_requests": self._rejected_requests,
                "queue_depth": waiting,  # = waiting; kept for existing readers
                "padded_tokens": self._padded_tokens,
                "real_tokens": self._real_tokens,
            }

    async def close(self) -> None:
        """Stop taking work; waiting requests get ModelNotReady; the running pass finishes."""
        self._closed = True
        for entry in self._waiting:
            if not entry.future.done():
                entry.future.set_exception(ModelNotReady(self.name))
        self._waiting.clear()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    # ------------------------------------------------------------------ runner

    def _ensure_runner(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            # A new event loop (e.g. a restarted server): futures of the old loop are dead.
            self._waiting = [e for e in self._waiting if e.future.get_loop() is loop]
            self._runner = None
            self._loop = loop
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name=f"hf-runtime-batcher-{self.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._waiting = [e for e in self._waiting if not e.future.done()]
            if not self._waiting:
                return
            batch = self._take_batch()
            items = [entry.item for entry in batch]
            queued_at = [entry.queued_at for entry in batch]
            self._running_items = len(items)
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._forward, items, queued_at
                )
                if len(outputs) != len(items):
                    raise RuntimeError(
                        f"forward returned {len(outputs)} outputs for {len(items)} items"
                    )
            except asyncio.CancelledError:
                for entry in batch:
                    entry.future.cancel()
                raise
            except Exception as exc:  # fail only this batch's requests; keep serving
                logger.exception(
                    "model %s: a forward pass of %d items failed", self.name, len(items)
                )
                with self._stats_lock:
                    self._failed_batches += 1
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                continue
            finally:
                self._running_items = 0
            self._record(items)
            for entry, output in zip(batch, outputs, strict=True):
                if not entry.future.done():
                    entry.future.set_result(output)

    def _forward(self, items: list[ForwardItem], queued_at: list[float]) -> Sequence[Any]:
        """The forward pass, in the inference thread; queue times are observed here, off the
        event loop, at the moment the pass really starts."""
        started = time.perf_counter()
        for submitted in queued_at:
            observe_queue_time(self.name, self.backend, started - submitted)
        return self._run_batch(items)

    def _bucket(self, length: int) -> int:
        return length if self._exact_lengths else length_bucket(length)

    def _take_batch(self) -> list[_Waiting]:
        bucket = self._bucket(self._waiting[0].item.padded_length)
        batch: list[_Waiting] = []
        rest: list[_Waiting] = []
        longest = 0
        for entry in self._waiting:
            length = entry.item.padded_length
            fits = (
                self._bucket(length) == bucket
                and len(batch) < self.max_batch_size
                and (not batch or max(longest, length) * (len(batch) + 1) <= self.max_batch_tokens)
            )
            if fits:
                batch.append(entry)
                longest = max(longest, length)
            else:
                rest.append(entry)
        self._waiting = rest
        return batch

    def _record(self, items: Sequence[ForwardItem]) -> None:
        longest = max(item.padded_length for item in items)
        with self._stats_lock:
            self._batches += 1
            self._items += len(items)
            self._largest_batch = max(self._largest_batch, len(items))
            self._padded_tokens += longest * len(items)
            self._real_tokens += sum(len(item.encoding) for item in items)


__all__ = ["EncoderBatcher", "length_bucket"]
