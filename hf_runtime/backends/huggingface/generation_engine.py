"""Continuous-batching generation engine for transformers causal and seq2seq LMs.

`HFGenerationEngine` is the huggingface backend's `hf_runtime.backends.GenerationEngine`.

One dedicated thread owns the model. Each loop iteration it admits waiting sequences (up to
`max_num_seqs` running, `PREFILL_TOKEN_BUDGET` prompt tokens at a time) and steps the running
batch once (`running_batch.RunningBatch.step`: prefill the admitted prompts together, then ONE
decoding step for every running sequence together). So requests join and leave between steps
and never wait for each other to finish.

The asyncio side only enqueues (`generate`) and reads its own `asyncio.Queue`, which the thread
fills through one `loop.call_soon_threadsafe` per event loop and step (`delivery.Outbox`).
Closing the iterator or cancelling its task flags the sequence; the thread drops it before the
next step. An exception while processing one sequence ends that sequence with the error; the
thread keeps serving the others (KServe #3957).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import torch

from hf_runtime.backends.huggingface import BACKEND
from hf_runtime.backends.huggingface.decode_batch import DecodeBatch, make_decode_batch
from hf_runtime.backends.huggingface.delivery import Outbox
from hf_runtime.backends.huggingface.prefix_cache import PrefixCache, PrefixCacheSettings
from hf_runtime.backends.huggingface.running_batch import (
    PREFILL_TOKEN_BUDGET,
    EngineSequence,
    RunningBatch,
)
from hf_runtime.decoding.admission import AdmissionLimit
from hf_runtime.decoding.detokenize import TokenTextCache
from hf_runtime.decoding.grammar import GrammarCompiler
from hf_runtime.decoding.limits import check_request
from hf_runtime.errors import HFRuntimeError, ModelLoadFailed, ModelNotReady
from hf_runtime.observability.metrics import observe_queue_time
from hf_runtime.types import GenerationDelta, GenerationRequest

logger = logging.getLogger("hf_runtime")


class HFGenerationEngine:
    """Continuous batching over a loaded transformers model. Thread-safe `generate`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_model_len: int,
        max_num_seqs: int,
        max_queue_size: int,
        eos_token_ids: Collection[int],
        name: str = "model",
        padded_batching: bool | None = None,
        prefix_cache: PrefixCacheSettings | None = None,
    ) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.is_encoder_decoder = bool(model.config.is_encoder_decoder)
        self.max_model_len = max_model_len
        self.max_num_seqs = max_num_seqs
        self.max_queue_size = max_queue_size
        self.admission = AdmissionLimit(
            name, max_num_seqs=max_num_seqs, max_queue_size=max_queue_size
        )
        self.eos_token_ids = frozenset(eos_token_ids)
        self.name = name
        self.input_vocab_size = int(model.get_input_embeddings().num_embeddings)
        output = model.get_output_embeddings()
        self.vocab_size = int(output.out_features if output is not None else self.input_vocab_size)
        # The engine thread decodes with its own tokenizer copy: a fast tokenizer mutated by an
        # encode on another thread (padding/truncation state) must not be read concurrently.
        self._tokenizer = copy.deepcopy(tokenizer)
        self._token_texts = TokenTextCache(self._tokenizer)
        # Structured outputs: xgrammar's tokenizer tables are built on the first constrained
        # request (in a compile thread), never for models that only serve free text.
        self.grammars = GrammarCompiler(
            self._tokenizer, vocab_size=self.vocab_size, stop_token_ids=self.eos_token_ids
        )
        self._batch: DecodeBatch = make_decode_batch(
            model, self.device, padded=padded_batching, prefix_cache=prefix_cache
        )
        self._wakeup = threading.Condition()
        self._waiting: deque[EngineSequence] = deque()
        self._outbox = Outbox()  # engine thread only: deltas not yet handed to their loops
        # Engine thread only: the sequences decoding together (rows of self._batch).
        self._running = RunningBatch(
            self._batch,
            self._outbox,
            name=name,
            tokenizer=self._tokenizer,
            token_texts=self._token_texts,
            vocab_size=self.vocab_size,
            eos_token_ids=self.eos_token_ids,
            device=self.device,
            is_encoder_decoder=self.is_encoder_decoder,
        )
        self._stopping = False
        self.failure: str | None = None  # set if the engine thread dies (see _run)
        self._admitted: list[EngineSequence] = []  # engine thread only: taken, not running yet
        self._thread = threading.Thread(target=self._run, name=f"generate-{name}", daemon=True)
        self._thread.start()

    @property
    def batch_kind(self) -> str:
        return type(self._batch).__name__

    @property
    def ready(self) -> bool:
        return not self._stopping and self.failure is None

    @property
    def prefix_cache(self) -> PrefixCache | None:
        return self._batch.prefix_cache

    def stats(self) -> dict[str, int]:
        cache = self._batch.prefix_cache
        return {
            **self._running.counters,
            **(cache.stats() if cache is not None else {}),
            "running": self.num_running,
            "waiting": self.num_waiting,
            "rejected_requests": self.admission.rejected,
        }

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        return len(self._running)

    # ------------------------------------------------------------------ asyncio side

    def check_request(self, request: GenerationRequest) -> int:
        """Validate a request; return its effective max_tokens. Raises InvalidInput."""
        return check_request(
            request,
            max_model_len=self.max_model_len,
            vocab_size=self.vocab_size,
            is_encoder_decoder=self.is_encoder_decoder,
            input_vocab_size=self.input_vocab_size,
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Stream one sequence's deltas (coalesced when the consumer falls behind).

        Raises Overloaded when max_num_seqs + max_queue_size sequences are already in flight
        (the rule vLLM follows too: hf_runtime.decoding.admission).
        """
        max_tokens = self.check_request(request)
        structured = request.params.structured
        # Compiled (or found in the cache) before admission: a bad schema never takes a place.
        grammar = await self.grammars.compile(structured) if structured is not None else None
        self._check_alive()
        ticket = self.admission.reserve()  # before any later await: see admission.py
        seq = EngineSequence(request, max_tokens, asyncio.get_running_loop(), asyncio.Queue())
        seq.grammar = grammar
        finished = False
        try:
            with self._wakeup:
                self._check_alive()
                seq.enqueued = time.perf_counter()
                self._waiting.append(seq)
                self._wakeup.notify()
            while not finished:
                items = [await seq.queue.get()]
                while not seq.queue.empty():
                    items.append(seq.queue.get_nowait())
                delta: GenerationDelta | None = None
                for item in items:
                    if isinstance(item, BaseException):
                        finished = True
                        if delta is not None:
                            yield delta
                        raise item
                    delta = item if delta is None else _merge(delta, item)
                assert delta is not None
                finished = delta.finish_reason is not None
                yield delta
        finally:
            if not finished:
                self._abort(seq)
            ticket.release()

    def _abort(self, seq: EngineSequence) -> None:
        seq.aborted = True
        # Waiting: frees its queue place now. Running: the engine thread drops it before its
        # next step.
        with self._wakeup, contextlib.suppress(ValueError):
            self._waiting.remove(seq)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread; sequences still waiting or running end with ModelNotReady."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join(timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------------ engine thread

    def _check_alive(self) -> None:
        if self.failure is not None:
            raise ModelLoadFailed(self.name, self.failure)
        if self._stopping:
            raise ModelNotReady(self.name)

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # the thread is dying: nothing would answer again
            with self._wakeup:
                self.failure = f"Its inference thread died: {type(exc).__name__}: {exc}"
            logger.exception("model %s: the inference thread died", self.name)
            error = ModelLoadFailed(self.name, self.failure)
            for seq in self._admitted:
                self._outbox.put(seq, error)
            with contextlib.suppress(Exception):  # best effort: the batch may be what broke
                self._shutdown(error)
            # Not re-raised: logged above, and the thread ends here either way.

    def _serve(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wakeup:
                    while not (self._stopping or self._waiting or self._running):
                        self._wakeup.wait()
                    if self._stopping:
                        break
                    admitted = self._take_waiting()
                    self._admitted = admitted  # failed too, should the thread die with them
                self._observe_queue_times(admitted)  # outside the lock: generate() waits on it
                try:
                    self._running.step(admitted)
                except Exception:  # a bug in the loop itself: fail the batch, keep serving
                    logger.exception("model %s: generation step failed", self.name)
                    self._running.fail_all(HFRuntimeError("generation failed: internal error"))
                finally:
                    self._outbox.flush()
        self._shutdown()

    def _take_waiting(self) -> list[EngineSequence]:
        admitted: list[EngineSequence] = []
        budget = PREFILL_TOKEN_BUDGET
        while self._waiting and len(self._running) + len(admitted) < self.max_num_seqs:
            seq = self._waiting[0]
            cost = len(seq.request.prompt_token_ids)
            if admitted and cost > budget:
                break
            self._waiting.popleft()
            if not seq.aborted:
                admitted.append(seq)
                budget -= cost
        return admitted

    def _observe_queue_times(self, admitted: Sequence[EngineSequence]) -> None:
        now = time.perf_counter()
        for seq in admitted:
            observe_queue_time(self.name, BACKEND.name, now - seq.enqueued)

    def _shutdown(self, error: HFRuntimeError | None = None) -> None:
        """Fail every sequence running or waiting (default: ModelNotReady, closing)."""
        error = error or ModelNotReady(self.name)
        self._running.fail_all(error)
        with self._wakeup:
            waiting, self._waiting = list(self._waiting), deque()
        for seq in waiting:
            self._outbox.put(seq, error)
        self._outbox.flush()


def _merge(first: GenerationDelta, second: GenerationDelta) -> GenerationDelta:
    """Two consecutive deltas of one sequence as one."""
    logprobs = None
    if first.logprobs is not None or second.logprobs is not None:
        logprobs = (first.logprobs or []) + (second.logprobs or [])
    return GenerationDelta(
        text=first.text + second.text,
        token_ids=first.token_ids + second.token_ids,
        logprobs=logprobs,
        finish_reason=second.finish_reason,
        stop_reason=second.stop_reason,
        prompt_tokens=first.prompt_tokens or second.prompt_tokens,
    )
