"""Cross-request batching of encoder work: one batcher (and one inference thread) per model.

Every protocol's requests submit an `EncoderJob`: the texts (or pairs, or ready encodings) of
one request and what to do with them. A runner task on the event loop takes the jobs waiting,
oldest first, up to `max_batch_size` texts (a larger single request is taken alone), and hands
them to the model's inference thread in ONE hop. There, for the whole batch:
  1. the texts are tokenized in one fast-tokenizer call per kind of tokenizing (plain texts,
     untruncated texts, pairs): one call for 64 one-sentence requests, not 64;
  2. each job turns its encodings into ForwardItems (its own checks: too long, empty);
  3. the items are grouped by padded length and run, one forward pass per group;
  4. each job postprocesses its outputs into its result.
The event loop only sets each job's future. While a hop runs, new jobs accumulate for the
next; there is no artificial delay: an idle batcher runs a lone request at once. A failure
in one job (a bad text, a failed pass) fails only the jobs it concerns.

Abandoned work is dropped: when a request is cancelled (its client disconnected or cancelled
the gRPC call), its job leaves the queue at once, so admission counts only live work, and a
hop under way skips the job's remaining forward passes.

Grouping into passes: the oldest item picks the length bucket (powers of two, everything up
to 16 tokens shares one), and the pass takes the hop's items of that bucket in arrival order
up to `max_batch_size` texts and `max_batch_tokens` padded tokens. Short texts thus never pay
for a long one's padding, and the oldest item always goes first.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.backends import Encoding, ForwardItem
from hf_runtime.config import BatchingConfig
from hf_runtime.errors import InvalidInput, ModelNotReady, Overloaded
from hf_runtime.observability.metrics import observe_queue_time

logger = logging.getLogger("hf_runtime")

SMALLEST_BUCKET_TOKENS = 16

RunBatch = Callable[[list[ForwardItem]], Sequence[Any]]
# (tokenize key, inputs of every job with that key) -> one Encoding per input, in order.
TokenizeBatch = Callable[[Hashable, list[Any]], list[Encoding]]


def _as_items(encodings: list[Encoding]) -> list[ForwardItem]:
    raise AssertionError("jobs without a tokenize key carry ForwardItems")  # pragma: no cover


def _outputs(encodings: list[Encoding], outputs: list[Any]) -> Any:
    return outputs


@dataclass
class EncoderJob:
    """One request's work. `tokenize` is the key the batcher's tokenize function takes (jobs
    with the same key in a hop share one tokenizer call); None: `inputs` are ForwardItems.
    `prepare` (encodings -> items) and `finish` (encodings, outputs -> result) run in the
    inference thread; an exception from either fails this job only."""

    inputs: Sequence[Any]
    tokenize: Hashable | None = None
    prepare: Callable[[list[Encoding]], list[ForwardItem]] = _as_items
    finish: Callable[[list[Encoding], list[Any]], Any] = _outputs

    @property
    def size(self) -> int:
        return len(self.inputs)


@dataclass
class _Waiting:
    job: EncoderJob
    future: asyncio.Future[Any]
    queued_at: float  # time.perf_counter() at submit
    # Set (on the event loop) when the request is cancelled; the hop reads it between passes.
    abandoned: threading.Event = field(default_factory=threading.Event)
    queued: bool = True  # still in the batcher's queue (not yet taken into a hop)


@dataclass
class _Work:
    """A job inside a hop: its encodings, items and outputs so far, or its error."""

    job: EncoderJob
    abandoned: threading.Event = field(default_factory=threading.Event)
    encodings: list[Encoding] = field(default_factory=list)
    items: list[ForwardItem] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    result: Any = None


def length_bucket(length: int) -> int:
    """ceil(log2(length)), with every length up to SMALLEST_BUCKET_TOKENS in one bucket:
    (16, 32] share a bucket, (32, 64] the next, and so on."""
    return (max(length, SMALLEST_BUCKET_TOKENS) - 1).bit_length()


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
        self._tokenize_batch = tokenize_batch
        self.max_batch_size = batching.max_batch_size
        self.max_batch_tokens = batching.max_batch_tokens
        self.max_queue_size = batching.max_queue_size
        self.name = name
        self.backend = backend
        self._exact_lengths = exact_lengths
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"hf-runtime-infer-{name}"
        )
        self._waiting: deque[_Waiting] = deque()
        self._waiting_items = 0
        self._running_items = 0  # items of the hop under way (0 between hops)
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stats_lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("batches", "items", "largest_batch", "failed_batches", "rejected_requests",
             "padded_tokens", "real_tokens"), 0,
        )  # fmt: skip

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
        if self._waiting_items + job.size > self.max_queue_size:
            with self._stats_lock:
                self._counts["rejected_requests"] += 1
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

    def stats(self) -> dict[str, int]:
        """Counters since start (forward passes run, items, largest pass, failed passes, 429s,
        tokens) and the state now: items in the hop under way (running) and queued (waiting)."""
        waiting = self._waiting_items
        with self._stats_lock:
            counts = dict(self._counts)
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
                work = [_Work(entry.job, error=exc) for entry in batch]
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

    def _hop(self, batch: list[_Waiting]) -> list[_Work]:
        """Blocking: tokenize, prepare, forward and finish every job of `batch`."""
        started = time.perf_counter()
        for entry in batch:  # queue time per item, at the moment the hop really starts
            waited = started - entry.queued_at
            for _ in range(entry.job.size):
                observe_queue_time(self.name, self.backend, waited)
        work = [_Work(entry.job, entry.abandoned) for entry in batch]
        self._tokenize(work)
        for done in work:
            if done.error is None and not done.abandoned.is_set():
                try:
                    done.items = list(
                        done.job.prepare(done.encodings)
                        if done.job.tokenize is not None
                        else done.job.inputs
                    )
                except Exception as exc:
                    done.error = exc
        self._forward_all([done for done in work if done.error is None and done.items])
        for done in work:
            if done.error is None and not done.abandoned.is_set():
                try:
                    done.result = done.job.finish(done.encodings, done.outputs)
                except Exception as exc:
                    done.error = exc
        return work

    def _tokenize(self, work: list[_Work]) -> None:
        """One tokenizer call per key for every job with that key; when a call fails, each job
        is tokenized alone so that only the job with the bad input fails."""
        groups: dict[Hashable, list[_Work]] = {}
        for done in work:
            if done.job.tokenize is not None:
                groups.setdefault(done.job.tokenize, []).append(done)
        for key, jobs in groups.items():
            assert self._tokenize_batch is not None, "a job with texts needs tokenize_batch"
            inputs = [value for done in jobs for value in done.job.inputs]
            try:
                encodings = self._tokenize_batch(key, inputs)
            except Exception as exc:
                if len(jobs) == 1:
                    jobs[0].error = exc
                    continue
                for done in jobs:
                    try:
                        done.encodings = self._tokenize_batch(key, list(done.job.inputs))
                    except Exception as exc:
                        done.error = exc
                continue
            start = 0
            for done in jobs:
                done.encodings = encodings[start : start + done.job.size]
                start += done.job.size

    def _forward_all(self, work: list[_Work]) -> None:
        """Every item of `work` through the model, grouped into passes; a failed pass fails
        the jobs that had items in it."""
        pending = [(done, index) for done in work for index in range(len(done.items))]
        for done in work:
            done.outputs = [None] * len(done.items)
        while pending:
            # Items of requests cancelled meanwhile are not worth a pass: nobody waits for them.
            pending = [(done, index) for done, index in pending if not done.abandoned.is_set()]
            if not pending:
                break
            taken, pending = self._take_pass(pending)
            items = [done.items[index] for done, index in taken]
            try:
                outputs = self._run_batch(items)
                if len(outputs) != len(items):
                    raise RuntimeError(
                        f"forward returned {len(outputs)} outputs for {len(items)} items"
                    )
            except Exception as exc:  # fail only this pass's jobs; keep serving
                logger.exception(
                    "model %s: a forward pass of %d items failed", self.name, len(items)
                )
                with self._stats_lock:
                    self._counts["failed_batches"] += 1
                failed = {id(done) for done, _ in taken}
                for done, _ in taken:
                    done.error = done.error or exc
                pending = [(d, i) for d, i in pending if id(d) not in failed]
                continue
            self._record(items)
            for (done, index), output in zip(taken, outputs, strict=True):
                done.outputs[index] = output

    def _bucket(self, length: int) -> int:
        return length if self._exact_lengths else length_bucket(length)

    def _take_pass(
        self, pending: list[tuple[_Work, int]]
    ) -> tuple[list[tuple[_Work, int]], list[tuple[_Work, int]]]:
        def length(entry: tuple[_Work, int]) -> int:
            return entry[0].items[entry[1]].padded_length

        bucket = self._bucket(length(pending[0]))
        taken: list[tuple[_Work, int]] = []
        rest: list[tuple[_Work, int]] = []
        longest = 0
        for entry in pending:
            size = length(entry)
            fits = (
                self._bucket(size) == bucket
                and len(taken) < self.max_batch_size
                and (not taken or max(longest, size) * (len(taken) + 1) <= self.max_batch_tokens)
            )
            if fits:
                taken.append(entry)
                longest = max(longest, size)
            else:
                rest.append(entry)
        return taken, rest

    def _record(self, items: Sequence[ForwardItem]) -> None:
        longest = max(item.padded_length for item in items)
        with self._stats_lock:
            counts = self._counts
            counts["batches"] += 1
            counts["items"] += len(items)
            counts["largest_batch"] = max(counts["largest_batch"], len(items))
            counts["padded_tokens"] += longest * len(items)
            counts["real_tokens"] += sum(len(item.encoding) for item in items)


__all__ = ["EncoderBatcher", "EncoderJob", "length_bucket"]
