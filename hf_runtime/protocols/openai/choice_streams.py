"""Running a request's sequences concurrently on the engine, and stopping them reliably.

Every (prompt, choice) pair is its own engine sequence so the engine can batch them. One task
per sequence pumps its deltas into a queue; the handler reads the queue in arrival order (that is
how n>1 streams interleave). Closing `ChoiceStreams` cancels the tasks, which closes the engine
iterators, which aborts the sequences: client disconnects and errors never leave work running.

Generation metrics are fed here, where every sequence of both backends passes: time to first
token, inter-token latency and token counts (hf_runtime.observability.metrics.TokenTimer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from hf_runtime.errors import ErrorKind, HFRuntimeError
from hf_runtime.model import TextGenerator
from hf_runtime.observability.context import current_request
from hf_runtime.observability.metrics import TokenTimer
from hf_runtime.protocols.openai.request_params import SequenceSpec
from hf_runtime.types import GenerationDelta, TokenLogprob

T = TypeVar("T")

# Queue items: (sequence index, delta or None, error or None). A None delta without an error
# marks a sequence whose engine iterator ended without a finish reason.
_Item = tuple[int, GenerationDelta | None, BaseException | None]


class EngineAborted(HFRuntimeError):
    """The engine ended a sequence with finish_reason "abort": vLLM's engine core does so for
    the requests it cannot finish when it shuts down (SIGTERM). Not the client's fault, and
    another replica can serve it: 503."""

    kind = ErrorKind.NOT_READY


class ChoiceStreams:
    """The engine sequences of one request, read as one stream of (index, delta).

    Metrics are labelled with `model` and `backend` ("huggingface" / "vllm"); either one left
    out comes from the request context (the registry records both when the route looks the
    model up). Without both, nothing is recorded: an unlabelled series would mix models.
    `started` (time.perf_counter()) is when the request arrived, for time to first token;
    default: now, i.e. after the handler tokenized the prompt.
    """

    def __init__(
        self,
        generator: TextGenerator,
        specs: list[SequenceSpec],
        *,
        model: str | None = None,
        backend: str | None = None,
        started: float | None = None,
    ) -> None:
        self._generator = generator
        self._specs = specs
        self._labels = _metric_labels(model, backend)
        self._started = _arrival() if started is None else started
        # Usage counts a prompt once however many choices (n) it has; so do the metrics.
        first_of_prompt: dict[int, int] = {}
        for spec in specs:
            first_of_prompt.setdefault(spec.prompt_index, spec.index)
        self._counts_prompt = set(first_of_prompt.values())
        # Unbounded on purpose: a request's output is bounded by n * prompts * max_tokens, and a
        # slow reader must not hold back the engine's batch.
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._buffered: list[tuple[int, GenerationDelta]] = []
        self._finished: set[int] = set()

    async def start(self) -> None:
        """Start every sequence and wait for each one's first delta.

        Errors the engine raises on admission (Overloaded, a prompt longer than the context)
        surface here, before any response byte is sent, so they keep their HTTP status.
        """
        self._tasks = [asyncio.create_task(self._pump(spec)) for spec in self._specs]
        started: set[int] = set()
        try:
            while len(started) < len(self._specs):
                index, delta = await self._next()
                started.add(index)
                self._buffered.append((index, delta))
        except BaseException:
            await self.aclose()
            raise

    async def events(self) -> AsyncIterator[tuple[int, GenerationDelta]]:
        """Deltas in arrival order until every sequence has finished; raises engine errors."""
        buffered, self._buffered = self._buffered, []
        for item in buffered:
            yield item
        while len(self._finished) < len(self._specs):
            yield await self._next()

    async def aclose(self) -> None:
        """Cancel whatever still runs (aborting it in the engine) and wait for it to stop."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Shielded: this often runs while the handler itself is being cancelled.
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _next(self) -> tuple[int, GenerationDelta]:
        index, delta, error = await self._queue.get()
        if error is not None:
            raise error
        if delta is None:  # ended without a finish reason: treat as a natural stop
            delta = GenerationDelta(text="", token_ids=[], finish_reason="stop")
        if delta.finish_reason == "abort":
            raise EngineAborted(
                "the engine stopped this generation before it finished (it is shutting "
                "down); retry it"
            )
        if delta.finish_reason is not None:
            self._finished.add(index)
        return index, delta

    async def _pump(self, spec: SequenceSpec) -> None:
        timer = TokenTimer(*self._labels, self._started) if self._labels else None
        first = True
        stream = self._generator.generate(spec.request)
        try:
            async for delta in stream:
                if timer is not None:
                    if first and spec.index in self._counts_prompt:
                        timer.prompt(delta.prompt_tokens or len(spec.request.prompt_token_ids))
                    timer.tokens(len(delta.token_ids), time.perf_counter())
                first = False
                self._queue.put_nowait((spec.index, delta, None))
                if delta.finish_reason is not None:
                    return
            self._queue.put_nowait((spec.index, None, None))
        except Exception as exc:
            self._queue.put_nowait((spec.index, None, exc))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


@dataclass
class ChoiceResult:
    """Everything one sequence produced, for non-streaming responses."""

    text_parts: list[str] = field(default_factory=list)
    part_tokens: list[int] = field(default_factory=list)  # each text part's token count
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: str | int | None = None
    prompt_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def pieces(self) -> list[tuple[str, int]]:
        """The text as the engine's deltas: (text, token count)."""
        return list(zip(self.text_parts, self.part_tokens, strict=True))

    def add(self, delta: GenerationDelta) -> None:
        self.text_parts.append(delta.text)
        self.part_tokens.append(len(delta.token_ids))
        self.completion_tokens += len(delta.token_ids)
        self.logprobs.extend(delta.logprobs or [])
        self.prompt_tokens = self.prompt_tokens or delta.prompt_tokens
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
            self.stop_reason = delta.stop_reason


def _arrival() -> float:
    """When the request reached the server (the gateway's clock), else now."""
    context = current_request()
    return context.arrived if context is not None else time.perf_counter()


def _metric_labels(model: str | None, backend: str | None) -> tuple[str, str] | None:
    context = current_request()
    if context is not None:
        model = model or context.model
        backend = backend or context.backend
    return (model, backend) if model and backend else None


async def collect(
    generator: TextGenerator,
    specs: list[SequenceSpec],
    *,
    model: str | None = None,
    backend: str | None = None,
    started: float | None = None,
) -> list[ChoiceResult]:
    """Run every sequence to completion; results indexed like `specs` (metrics: ChoiceStreams)."""
    streams = ChoiceStreams(generator, specs, model=model, backend=backend, started=started)
    results = [ChoiceResult() for _ in specs]
    await streams.start()
    try:
        async for index, delta in streams.events():
            results[index].add(delta)
    finally:
        await streams.aclose()
    return results


def prompt_token_total(specs: list[SequenceSpec], reported: dict[int, int]) -> int:
    """Prompt tokens counted once per prompt: the engine's count (`reported`, by sequence index)
    when it gave one, else the length of the token ids we sent."""
    total = 0
    seen: set[int] = set()
    for spec in specs:
        if spec.prompt_index not in seen:
            seen.add(spec.prompt_index)
            total += reported.get(spec.index) or len(spec.request.prompt_token_ids)
    return total
