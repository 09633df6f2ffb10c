"""The cross-request batcher, with a recording fake forward (no model, no timing asserts)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hf_runtime.backends import Encoding, ForwardItem
from hf_runtime.config import BatchingConfig
from hf_runtime.errors import InvalidInput, ModelNotReady, Overloaded
from hf_runtime.runtime.batcher import EncoderBatcher, length_bucket
from tests.observability.support import sample


def item(length: int, min_length: int = 0) -> ForwardItem:
    return ForwardItem(Encoding(tuple(range(1, length + 1))), min_length=min_length)


class RecordingForward:
    """Fake forward: output = the item's length; records batches and the running thread.
    `gate` (when set) holds the first batch until released, so requests pile up meanwhile."""

    def __init__(self, hold_first: bool = False, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.hold_first = hold_first
        self.fail_first = fail_first

    def __call__(self, items: list[ForwardItem]) -> list[int]:
        self.threads.add(threading.get_ident())
        self.batches.append([i.padded_length for i in items])
        first = len(self.batches) == 1
        self.started.set()
        if first and self.hold_first:
            self.gate.wait(timeout=10)
        if first and self.fail_first:
            raise RuntimeError("device on fire")
        return [i.padded_length for i in items]


def batcher_for(forward, **batching) -> EncoderBatcher:
    return EncoderBatcher(forward, BatchingConfig(**batching), name="test")


async def wait_started(forward: RecordingForward) -> None:
    await asyncio.to_thread(forward.started.wait, 10)


async def test_lone_request_runs_at_once_in_the_inference_thread():
    forward = RecordingForward()
    batcher = batcher_for(forward)
    assert await batcher.submit([item(3), item(5)]) == [3, 5]
    assert forward.batches == [[3, 5]]
    assert threading.get_ident() not in forward.threads
    assert batcher.stats()["batches"] == 1
    await batcher.close()


async def test_concurrent_requests_share_one_forward_pass():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward)
    first = asyncio.create_task(batcher.submit([item(4)]))
    await wait_started(forward)  # the first pass is running; the next requests must wait
    others = [asyncio.create_task(batcher.submit([item(4 + n), item(2)])) for n in range(5)]
    await asyncio.sleep(0)
    assert batcher.stats()["queue_depth"] == 10
    forward.gate.set()
    results = await asyncio.gather(first, *others)

    assert results[0] == [4] and results[3] == [6, 2]
    stats = batcher.stats()
    assert (stats["batches"], stats["items"], stats["largest_batch"]) == (2, 11, 10)
    assert len(forward.threads) == 1  # one dedicated inference thread
    await batcher.close()


async def test_items_are_bucketed_by_padded_length():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    mixed = [asyncio.create_task(batcher.submit([item(n)])) for n in (5, 200, 12, 150, 40, 3, 60)]
    await asyncio.sleep(0)
    forward.gate.set()
    await asyncio.gather(first, *mixed)

    assert forward.batches[1:] == [[5, 12, 3], [200, 150], [40, 60]]
    assert {length_bucket(n) for n in (5, 12, 3, 16)} == {4}
    assert length_bucket(17) == length_bucket(32) != length_bucket(33)
    stats = batcher.stats()
    assert stats["padded_tokens"] == 1 + 3 * 12 + 2 * 200 + 2 * 60
    assert stats["real_tokens"] == 1 + 5 + 200 + 12 + 150 + 40 + 3 + 60
    await batcher.close()


async def test_min_length_pads_items_of_a_request_together():
    forward = RecordingForward()
    batcher = batcher_for(forward)
    assert await batcher.submit([item(3, min_length=50), item(50, min_length=50)]) == [50, 50]
    assert forward.batches == [[50, 50]]
    await batcher.close()


async def test_max_batch_size_and_max_batch_tokens_are_respected():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward, max_batch_size=3, max_batch_tokens=40)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    small = asyncio.create_task(batcher.submit([item(4) for _ in range(7)]))
    big = asyncio.create_task(batcher.submit([item(30), item(30), item(100)]))
    await asyncio.sleep(0)
    forward.gate.set()
    await asyncio.gather(first, small, big)

    assert forward.batches[1:] == [[4, 4, 4], [4, 4, 4], [4], [30], [30], [100]]
    assert batcher.stats()["largest_batch"] == 3
    await batcher.close()


async def test_exact_lengths_only_batches_equal_lengths():
    forward = RecordingForward(hold_first=True)
    batcher = EncoderBatcher(forward, BatchingConfig(), name="left", exact_lengths=True)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    rest = asyncio.create_task(batcher.submit([item(5), item(6), item(5)]))
    await asyncio.sleep(0)
    forward.gate.set()
    await asyncio.gather(first, rest)
    assert forward.batches[1:] == [[5, 5], [6]]
    await batcher.close()


async def test_full_queue_raises_overloaded():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward, max_queue_size=3)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    queued = asyncio.create_task(batcher.submit([item(2), item(2)]))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="max_queue_size 3"):
        await batcher.submit([item(2), item(2)])
    assert batcher.stats()["rejected_requests"] == 1
    forward.gate.set()
    assert await queued == [2, 2]
    await first
    assert await batcher.submit([item(2), item(2), item(2)]) == [2, 2, 2]  # room again
    await batcher.close()


async def test_request_larger_than_the_queue_is_invalid_not_overloaded():
    batcher = batcher_for(RecordingForward(), max_queue_size=3)
    with pytest.raises(InvalidInput, match="at most 3 per request"):
        await batcher.submit([item(1)] * 4)
    assert batcher.stats()["rejected_requests"] == 0
    await batcher.close()


async def test_failing_batch_fails_only_its_requests():
    forward = RecordingForward(hold_first=True, fail_first=True)
    batcher = batcher_for(forward)
    doomed = asyncio.create_task(batcher.submit([item(3), item(4)]))
    await wait_started(forward)
    fine = asyncio.create_task(batcher.submit([item(5)]))
    await asyncio.sleep(0)
    forward.gate.set()
    with pytest.raises(RuntimeError, match="device on fire"):
        await doomed
    assert await fine == [5]
    assert await batcher.submit([item(7)]) == [7]
    assert batcher.stats()["failed_batches"] == 1
    await batcher.close()


async def test_cancelled_request_is_skipped():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    gone = asyncio.create_task(batcher.submit([item(9)]))
    kept = asyncio.create_task(batcher.submit([item(8)]))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    forward.gate.set()
    assert await kept == [8]
    await first
    assert forward.batches == [[1], [8]]
    await batcher.close()


async def test_cancelled_requests_leave_the_queue_at_once():
    # Abandoned work must not hold admission: a flood of cancelled requests leaves room at once.
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward, max_queue_size=4)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    gone = [asyncio.create_task(batcher.submit([item(9), item(9)])) for _ in range(2)]
    await asyncio.sleep(0)
    assert batcher.stats()["waiting"] == 4
    with pytest.raises(Overloaded):
        await batcher.submit([item(2)])
    for task in gone:
        task.cancel()
    await asyncio.gather(*gone, return_exceptions=True)
    assert batcher.stats()["waiting"] == 0
    kept = asyncio.create_task(batcher.submit([item(8)] * 4))
    await asyncio.sleep(0)
    assert batcher.stats()["waiting"] == 4
    forward.gate.set()
    assert await kept == [8] * 4
    await first
    assert forward.batches == [[1], [8, 8, 8, 8]]
    await batcher.close()


async def test_a_full_queue_frees_places_already_being_cancelled_before_a_429():
    # A client's disconnect that reached the server before a new request takes a few turns of
    # the loop to cancel its work; the new request must not be refused meanwhile.
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward, max_queue_size=4)
    first = asyncio.create_task(batcher.submit([item(1)]))
    await wait_started(forward)
    gone = asyncio.create_task(batcher.submit([item(9)] * 4))
    await asyncio.sleep(0)
    assert batcher.stats()["waiting"] == 4
    loop = asyncio.get_running_loop()
    loop.call_soon(loop.call_soon, gone.cancel)  # the cancellation, two turns away
    kept = asyncio.create_task(batcher.submit([item(2)]))
    await asyncio.wait([gone])
    await asyncio.sleep(0)
    assert batcher.stats()["waiting"] == 1  # admitted, not refused
    forward.gate.set()
    assert await kept == [2]
    await first
    assert batcher.stats()["rejected_requests"] == 0
    await batcher.close()


async def test_cancelled_request_in_a_running_hop_skips_its_remaining_passes():
    forward = RecordingForward(hold_first=True)
    batcher = batcher_for(forward, max_batch_size=2)
    # One request of 6 items: three passes of 2; cancelled during the first.
    abandoned = asyncio.create_task(batcher.submit([item(3)] * 6))
    await wait_started(forward)
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    forward.gate.set()
    assert await batcher.submit([item(4)]) == [4]
    assert forward.batches == [[3, 3], [4]]
    await batcher.close()


async def test_closed_batcher_refuses_work():
    batcher = batcher_for(RecordingForward())
    await batcher.close()
    with pytest.raises(ModelNotReady):
        await batcher.submit([item(1)])


def test_a_new_event_loop_gets_a_working_runner():
    batcher = batcher_for(RecordingForward())
    assert asyncio.run(batcher.submit([item(2)])) == [2]
    assert asyncio.run(batcher.submit([item(3)])) == [3]


async def test_running_and_waiting_items_and_queue_time_per_item():
    forward = RecordingForward(hold_first=True)
    batcher = EncoderBatcher(forward, BatchingConfig(), name="batcher-metrics", backend="vllm")
    before = sample("hf_runtime_queue_time_seconds_count", model="batcher-metrics", backend="vllm")
    first = asyncio.create_task(batcher.submit([item(3), item(4)]))
    await wait_started(forward)
    queued = asyncio.create_task(batcher.submit([item(5), item(6), item(7)]))
    await asyncio.sleep(0)
    stats = batcher.stats()
    assert (stats["running"], stats["waiting"], stats["queue_depth"]) == (2, 3, 3)
    forward.gate.set()
    await asyncio.gather(first, queued)
    stats = batcher.stats()
    assert (stats["running"], stats["waiting"]) == (0, 0)
    # One observation per item, at the start of the pass that took it, labelled by backend.
    after = sample("hf_runtime_queue_time_seconds_count", model="batcher-metrics", backend="vllm")
    assert after - before == 5
    await batcher.close()
