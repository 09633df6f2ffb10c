"""Per-batch tokenizing: a batch's jobs are tokenized in one call, in the inference thread, in
the same hop as their forward passes and postprocessing; one job's bad input fails only it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from typing import Any

import pytest

from hf_runtime.backends import Encoding, ForwardItem
from hf_runtime.config import BatchingConfig
from hf_runtime.errors import InvalidInput
from hf_runtime.runtime.batcher import EncoderBatcher, EncoderJob
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.loading import load_encoder_model


class Recorder:
    """A fake tokenizer (a text's tokens: one per character) and forward (an item's output: its
    length), recording calls and threads; the first forward waits for `gate` when held."""

    def __init__(self, hold_first: bool = False) -> None:
        self.tokenize_calls: list[list[Any]] = []
        self.forward_calls: list[list[int]] = []
        self.threads: dict[str, set[int]] = {"tokenize": set(), "forward": set(), "finish": set()}
        self.gate, self.started = threading.Event(), threading.Event()
        self.hold_first = hold_first

    def tokenize(self, key: Hashable, texts: list[Any]) -> list[Encoding]:
        self.threads["tokenize"].add(threading.get_ident())
        self.tokenize_calls.append(list(texts))
        if any(text == "poison" for text in texts):
            raise ValueError("the tokenizer chokes on poison")
        return [Encoding(tuple(range(1, len(str(t)) + 1))) for t in texts]

    def forward(self, items: list[ForwardItem]) -> list[int]:
        self.threads["forward"].add(threading.get_ident())
        self.forward_calls.append([i.padded_length for i in items])
        self.started.set()
        if self.hold_first and len(self.forward_calls) == 1:
            self.gate.wait(timeout=10)
        return [i.padded_length for i in items]

    def job(self, texts: list[str], *, strict: bool = False) -> EncoderJob:
        def prepare(encodings: list[Encoding]) -> list[ForwardItem]:
            if strict and any(len(e) > 5 for e in encodings):
                raise InvalidInput("too long for this job")
            return [ForwardItem(e) for e in encodings]

        def finish(encodings: list[Encoding], outputs: list[Any]) -> list[Any]:
            self.threads["finish"].add(threading.get_ident())
            return [f"{len(e)}:{o}" for e, o in zip(encodings, outputs, strict=True)]

        return EncoderJob(texts, tokenize=("texts", True), prepare=prepare, finish=finish)


def batcher_for(recorder: Recorder, **batching: Any) -> EncoderBatcher:
    return EncoderBatcher(
        recorder.forward, BatchingConfig(**batching), tokenize_batch=recorder.tokenize, name="tok"
    )


async def test_waiting_jobs_are_tokenized_in_one_call_in_the_inference_thread() -> None:
    recorder = Recorder(hold_first=True)
    batcher = batcher_for(recorder)
    first = asyncio.create_task(batcher.run(recorder.job(["a"])))
    await asyncio.to_thread(recorder.started.wait, 10)
    texts = [["bb"], ["ccc", "dd"], ["e"], ["ffff"]]
    rest = [asyncio.create_task(batcher.run(recorder.job(t))) for t in texts]
    await asyncio.sleep(0)
    recorder.gate.set()
    results = await asyncio.gather(first, *rest)

    assert results == [["1:1"], ["2:2"], ["3:3", "2:2"], ["1:1"], ["4:4"]]
    assert recorder.tokenize_calls == [["a"], ["bb", "ccc", "dd", "e", "ffff"]]
    assert recorder.forward_calls == [[1], [2, 3, 2, 1, 4]]
    # One hop: tokenizing, forward and finishing all ran in the one inference thread.
    threads = set().union(*recorder.threads.values())
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert batcher.stats()["items"] == 6
    await batcher.close()


async def test_a_bad_input_fails_only_its_own_job() -> None:
    recorder = Recorder(hold_first=True)
    batcher = batcher_for(recorder)
    first = asyncio.create_task(batcher.run(recorder.job(["a"])))
    await asyncio.to_thread(recorder.started.wait, 10)
    poisoned = asyncio.create_task(batcher.run(recorder.job(["x", "poison"])))
    too_long = asyncio.create_task(batcher.run(recorder.job(["abcdefgh"], strict=True)))
    fine = asyncio.create_task(batcher.run(recorder.job(["ok"])))
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == ["1:1"]
    with pytest.raises(ValueError, match="poison"):
        await poisoned
    with pytest.raises(InvalidInput, match="too long"):
        await too_long
    assert await fine == ["2:2"]
    # The batch call failed, so each job was tokenized alone; only the good ones ran.
    assert recorder.tokenize_calls[1] == ["x", "poison", "abcdefgh", "ok"]
    assert recorder.forward_calls[1:] == [[2]]
    await batcher.close()


async def test_a_hop_takes_at_most_max_batch_size_texts_but_never_splits_a_job() -> None:
    recorder = Recorder(hold_first=True)
    batcher = batcher_for(recorder, max_batch_size=3)
    first = asyncio.create_task(batcher.run(recorder.job(["a"])))
    await asyncio.to_thread(recorder.started.wait, 10)
    jobs = [["b", "c"], ["d", "e"], ["f", "g", "h", "i"]]
    rest = [asyncio.create_task(batcher.run(recorder.job(t))) for t in jobs]
    await asyncio.sleep(0)
    assert batcher.stats()["waiting"] == 8
    recorder.gate.set()
    await asyncio.gather(first, *rest)
    assert recorder.tokenize_calls == [["a"], ["b", "c"], ["d", "e"], ["f", "g", "h", "i"]]
    assert recorder.forward_calls == [[1], [1, 1], [1, 1], [1, 1, 1], [1]]
    await batcher.close()


async def test_concurrent_requests_on_a_real_model_share_tokenizer_calls(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    config = model_config(path, model_name="clf")
    model = await load_encoder_model(config, source_for(path), Task.sequence_classification)
    texts = [f"text number {i} is here" for i in range(12)]
    alone = [(await model.predict([t])).predictions for t in texts]

    calls: list[int] = []
    real = model.encoder.tokenize

    def counting(batch: Any, **kwargs: Any) -> list[Encoding]:
        calls.append(len(batch))
        return real(batch, **kwargs)

    model.encoder.tokenize = counting  # type: ignore[method-assign]
    together = await asyncio.gather(*(model.predict([t]) for t in texts))
    assert [p.predictions for p in together] == alone  # the same answers, batched or not
    assert sum(calls) == len(texts) and len(calls) < len(texts)
    await model.aclose()
