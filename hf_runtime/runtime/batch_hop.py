"""One hop of the encoder batcher: the blocking work in the model's inference thread.

For a batch of jobs (see hf_runtime.runtime.batcher):
  1. the texts are tokenized in one fast-tokenizer call per kind of tokenizing (plain texts,
     untruncated texts, pairs): one call for 64 one-sentence requests, not 64;
  2. each job turns its encodings into ForwardItems (its own checks: too long, empty);
  3. the items are grouped by padded length and run, one forward pass per group;
  4. each job postprocesses its outputs into its result.
A failure in one job (a bad text, a failed pass) fails only the jobs it concerns, and a job
abandoned meanwhile (its request cancelled) skips its remaining passes.

Grouping into passes: the oldest item picks the length bucket (powers of two, everything up
to 16 tokens shares one), and the pass takes the hop's items of that bucket in arrival order
up to `max_batch_size` texts and `max_batch_tokens` padded tokens. Short texts thus never pay
for a long one's padding, and the oldest item always goes first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.backends import Encoding, ForwardItem

logger = logging.getLogger("hf_runtime")

SMALLEST_BUCKET_TOKENS = 16

RunBatch = Callable[[list[ForwardItem]], Sequence[Any]]
# (tokenize key, inputs of every job with that key) -> one Encoding per input, in order.
TokenizeBatch = Callable[[Hashable, list[Any]], list[Encoding]]
# The counters of hf_runtime.runtime.batcher.EncoderBatcher.stats.
COUNTERS = ("batches", "items", "largest_batch", "failed_batches", "rejected_requests",
            "padded_tokens", "real_tokens")  # fmt: skip


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
class JobWork:
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


class BatchHop:
    """Runs hops for one model (from its inference thread only) and counts their passes.

    `run_batch` is the blocking forward (items -> one output per item, in order);
    `tokenize_batch` the blocking tokenizer for jobs that carry texts. With `exact_lengths`
    only items of identical padded length share a pass (needed when extra padding would change
    outputs, e.g. left-padding tokenizers).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        tokenize_batch: TokenizeBatch | None,
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        exact_lengths: bool,
        name: str,
    ) -> None:
        self._run_batch = run_batch
        self._tokenize_batch = tokenize_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self._exact_lengths = exact_lengths
        self.name = name
        self._stats_lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)

    def counts(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._counts)

    def count(self, counter: str) -> None:
        with self._stats_lock:
            self._counts[counter] += 1

    def run(self, work: list[JobWork]) -> None:
        """Blocking: tokenize, prepare, forward and finish every job of `work` (in place)."""
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

    def _tokenize(self, work: list[JobWork]) -> None:
        """One tokenizer call per key for every job with that key; when a call fails, each job
        is tokenized alone so that only the job with the bad input fails."""
        groups: dict[Hashable, list[JobWork]] = {}
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

    def _forward_all(self, work: list[JobWork]) -> None:
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
                self.count("failed_batches")
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
        self, pending: list[tuple[JobWork, int]]
    ) -> tuple[list[tuple[JobWork, int]], list[tuple[JobWork, int]]]:
        def length(entry: tuple[JobWork, int]) -> int:
            return entry[0].items[entry[1]].padded_length

        bucket = self._bucket(length(pending[0]))
        taken: list[tuple[JobWork, int]] = []
        rest: list[tuple[JobWork, int]] = []
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
