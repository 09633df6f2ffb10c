"""Overload scenarios run unchanged on both backends: the same request mix must get the same
429s from the huggingface engine and from vLLM (hf_runtime.decoding.admission).

`generator` is anything with `generate(GenerationRequest)`; `admission` is its engine's
AdmissionLimit. The scenarios read nothing else, so a difference between backends shows up as
a failing assertion rather than being absorbed by backend-specific expectations.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hf_runtime.decoding.admission import AdmissionLimit
from hf_runtime.errors import Overloaded
from hf_runtime.types import GenerationRequest, SamplingParams


def request(index: int, prompt: list[int], max_tokens: int | None) -> GenerationRequest:
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0)
    return GenerationRequest(f"burst-{index}", prompt, params)


async def burst(generator: Any, prompt: list[int], count: int, max_tokens: int) -> tuple[int, int]:
    """Start `count` sequences at once, read each to its end: (completed, overloaded)."""

    async def one(index: int) -> int:
        deltas = [d async for d in generator.generate(request(index, prompt, max_tokens))]
        assert deltas[-1].finish_reason == "length"
        return sum(len(d.token_ids) for d in deltas)

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, Overloaded)
    ]
    if unexpected:
        raise unexpected[0]
    completed = [r for r in results if not isinstance(r, BaseException)]
    assert all(tokens == max_tokens for tokens in completed)
    return len(completed), len(results) - len(completed)


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def hold(generator: Any, index: int, prompt: list[int], release: asyncio.Event) -> None:
    """A client that reads one delta and then just stays connected."""
    stream = generator.generate(request(index, prompt, None))
    try:
        await anext(stream)
        await release.wait()
    finally:
        await stream.aclose()


async def bursts_are_cut_at_capacity(
    generator: Any, admission: AdmissionLimit, prompt: list[int], max_tokens: int = 6
) -> None:
    capacity = admission.capacity
    rejected = admission.rejected
    assert await burst(generator, prompt, capacity, max_tokens) == (capacity, 0)
    assert await burst(generator, prompt, capacity + 3, max_tokens) == (capacity, 3)
    assert admission.rejected == rejected + 3
    assert admission.in_flight == 0
    assert await burst(generator, prompt, capacity, max_tokens) == (capacity, 0)


async def disconnects_release_capacity(
    generator: Any, admission: AdmissionLimit, prompt: list[int]
) -> None:
    """Fill the engine with clients that stay connected; one more is refused; cancelling them
    (what a client disconnect does: their delta iterators are closed) frees every place."""
    capacity = admission.capacity
    release = asyncio.Event()
    clients = [asyncio.create_task(hold(generator, i, prompt, release)) for i in range(capacity)]
    await wait_until(lambda: admission.in_flight == capacity)
    with pytest.raises(Overloaded):
        await anext(generator.generate(request(99, prompt, 4)))
    for client in clients:
        client.cancel()
    results = await asyncio.gather(*clients, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert admission.in_flight == 0
    # Closing a started iterator (the other way a disconnect ends a sequence) frees it too.
    stream = generator.generate(request(100, prompt, None))
    await anext(stream)
    assert admission.in_flight == 1
    await stream.aclose()
    assert admission.in_flight == 0
    assert await burst(generator, prompt, capacity, 4) == (capacity, 0)
