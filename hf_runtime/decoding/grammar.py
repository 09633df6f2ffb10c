"""Constrained decoding with xgrammar: compiling a StructuredOutput, masking one sequence's logits.

`GrammarCompiler` belongs to one model (its tokenizer, logits width and EOS ids) and is used
from the asyncio side: `await compile(structured)` runs the checks of `schema_limits`, then
xgrammar, in a worker thread. Bounds, so that hostile schemas cost a 400 and nothing else:
  - each (kind, schema text) is compiled once: outcomes, errors included, sit in a bounded LRU,
    and concurrent requests for one schema share one compile;
  - a caller waits at most COMPILE_TIMEOUT_S (queueing included), then gets InvalidInput
    "schema too complex to compile within Ns". xgrammar cannot be interrupted, so the thread
    runs on; a compile that itself took longer than the timeout is remembered as too complex;
  - at most MAX_CONCURRENT_COMPILES threads compile (timed-out ones included), at most
    MAX_WAITING_COMPILES schemas wait for one (beyond: Overloaded).
xgrammar's own cache is off: it has no entry bound.

`Grammar` is a compiled, shareable grammar; `GrammarMatcher` (one per sequence, built in the
engine thread) holds the parsing state and its bitmask, masks the sequence's logits row and
accepts each chosen token. xgrammar and torch are imported where they are used: the checks
and the cache are needed by any backend, before any model runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_runtime.decoding.schema_limits import check_structured
from hf_runtime.decoding.text_constraints import (
    TEXT_KINDS,
    check_text_constraint,
    choice_grammar,
    choices,
)
from hf_runtime.errors import HFRuntimeError, InvalidInput, Overloaded, Unsupported
from hf_runtime.types import StructuredOutput

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("hf_runtime")

COMPILE_TIMEOUT_S = 10.0
MAX_CONCURRENT_COMPILES = 2
MAX_WAITING_COMPILES = 64
GRAMMAR_CACHE_ENTRIES = 128
GRAMMAR_CACHE_BYTES = 256 * 1024 * 1024
COMPILE_THREADS = 2  # xgrammar's own threads per compile (token mask cache)
# Both backends compile like vLLM's default xgrammar backend: any whitespace between tokens,
# declared property order, no properties beyond the schema's (xgrammar's strict mode).
OBJECT_SCHEMA = '{"type":"object"}'

CacheKey = tuple[str, str | None]
# How a 400 names each kind of constraint xgrammar refused.
_WHAT = {
    "regex": "the regular expression (structured_outputs.regex)",
    "grammar": "the EBNF grammar (structured_outputs.grammar)",
    "choice": "the choice list (structured_outputs.choice)",
    "structural_tag": "the structural tag (structured_outputs.structural_tag)",
}
# "[12:00:00] /project/cpp/json_schema_converter.cc:4944: " before each xgrammar message.
_XGRAMMAR_LOCATION = re.compile(r"\[[\d:]+\]\s*\S+:\d+:\s*")


@dataclass(frozen=True)
class Grammar:
    """A compiled grammar, shared by every sequence that uses the same schema."""

    compiled: Any  # xgrammar.CompiledGrammar
    vocab_size: int
    memory_bytes: int = 0

    def matcher(self) -> GrammarMatcher:
        return GrammarMatcher(self)


class GrammarMatcher:
    """One sequence's grammar state (engine thread only; never shared)."""

    def __init__(self, grammar: Grammar) -> None:
        import xgrammar

        self._matcher = xgrammar.GrammarMatcher(grammar.compiled)
        self.vocab_size = grammar.vocab_size
        self._bitmask = xgrammar.allocate_token_bitmask(1, grammar.vocab_size)
        self._shifts: torch.Tensor | None = None

    def mask(self, logits: torch.Tensor) -> torch.Tensor | None:
        """A copy of this sequence's logits row with the disallowed tokens at -inf (the row
        itself when all are allowed); None when the grammar allows nothing."""
        import torch

        row = logits[: self.vocab_size]
        if not self._matcher.fill_next_token_bitmask(self._bitmask):
            return row
        if row.device.type == "cpu" and row.dtype == torch.float32:
            # numpy, single-threaded: torch's small ops wait on its thread pool (slow under load).
            words = self._bitmask.numpy().view(np.uint8)
            allowed = np.unpackbits(words, bitorder="little", count=self.vocab_size).view(np.bool_)
            if not allowed.any():
                return None
            return torch.from_numpy(np.where(allowed, row.numpy(), np.float32(-np.inf)))
        if self._shifts is None:
            self._shifts = torch.arange(32, dtype=torch.int32, device=row.device)
        words_t = self._bitmask[0].to(row.device, non_blocking=True)
        bits = ((words_t.unsqueeze(1) >> self._shifts) & 1).bool().flatten()[: self.vocab_size]
        if not bool(bits.any()):
            return None
        return row.masked_fill(~bits, float("-inf"))

    def accept(self, token_id: int) -> bool:
        return bool(self._matcher.accept_token(token_id))

    @property
    def completed(self) -> bool:
        """The output so far is a complete match (more may still be allowed)."""
        return bool(self._matcher.is_completed())

    @property
    def terminated(self) -> bool:
        """A stop token was accepted: nothing can follow."""
        return bool(self._matcher.is_terminated())


@dataclass
class _Job:
    key: CacheKey
    structured: StructuredOutput
    deadline: float  # time.monotonic(): a job still queued then is not started (no caller)
    future: concurrent.futures.Future[Grammar | None] = field(
        default_factory=concurrent.futures.Future
    )


class GrammarCompiler:
    """Compiles structured-output constraints for one model (see module docstring)."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        vocab_size: int,
        stop_token_ids: Collection[int],
        keep_grammars: bool = True,
        timeout: float = COMPILE_TIMEOUT_S,
        max_concurrent: int = MAX_CONCURRENT_COMPILES,
        max_waiting: int = MAX_WAITING_COMPILES,
        cache_entries: int = GRAMMAR_CACHE_ENTRIES,
        cache_bytes: int = GRAMMAR_CACHE_BYTES,
    ) -> None:
        self._tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.stop_token_ids = sorted(set(stop_token_ids))
        # False (vLLM, which compiles again itself): remember only that a schema compiles.
        self.keep_grammars = keep_grammars
        self.timeout = timeout
        self._max_concurrent = max_concurrent
        self._max_waiting = max_waiting
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._lock = threading.Lock()
        self._cache: OrderedDict[CacheKey, Grammar | InvalidInput | None] = OrderedDict()
        self._cached_bytes = 0
        self._inflight: dict[CacheKey, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._threads = 0  # compile threads alive, timed-out ones included
        self._xgr_compiler: Any = None  # built in the first compile thread (~0.5 s)
        self._xgr_lock = threading.Lock()
        self.stats = {"compiles": 0, "cache_hits": 0, "timeouts": 0}

    # ------------------------------------------------------------------ asyncio side

    async def compile(self, structured: StructuredOutput) -> Grammar | None:
        """The compiled grammar (None when keep_grammars is False). InvalidInput for a bad,
        unsupported or too complex schema; Overloaded when too many schemas wait."""
        key: CacheKey = (structured.kind, structured.schema)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return self._outcome(self._cache[key], structured)
            job = self._inflight.get(key)
            if job is None:
                job = self._submit(key, structured)
            else:  # still worth starting while any caller waits
                job.deadline = max(job.deadline, time.monotonic() + self.timeout)
        # Shielded: a caller that gives up must not cancel the job other callers share.
        waiter = asyncio.wrap_future(job.future)
        waiter.add_done_callback(_retrieve)
        try:
            result = await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except asyncio.TimeoutError:  # not yet the builtin on Python 3.10
            self.stats["timeouts"] += 1
            raise self._too_complex(structured) from None
        except InvalidInput as exc:  # shared by every caller: each gets its own param
            raise InvalidInput(exc.message, param=structured.param) from None
        return result

    def _submit(self, key: CacheKey, structured: StructuredOutput) -> _Job:
        """Queue or start a new job (holding self._lock)."""
        if len(self._queue) >= self._max_waiting:
            raise Overloaded(
                "too many JSON schemas are waiting to be compiled; retry shortly",
                param=structured.param,
            )
        job = _Job(key, structured, time.monotonic() + self.timeout)
        self._inflight[key] = job
        if self._threads < self._max_concurrent:
            self._threads += 1
            threading.Thread(
                target=self._work, args=(job,), name="grammar-compile", daemon=True
            ).start()
        else:
            self._queue.append(job)
        return job

    def _too_complex(self, structured: StructuredOutput) -> InvalidInput:
        return InvalidInput(
            f"schema too complex to compile within {self.timeout:g}s", param=structured.param
        )

    @staticmethod
    def _outcome(entry: Grammar | InvalidInput | None, structured: StructuredOutput) -> Any:
        if isinstance(entry, InvalidInput):
            # A fresh error with this request's param (the cached one may name another).
            raise InvalidInput(entry.message, param=structured.param)
        return entry

    # ------------------------------------------------------------------ compile threads

    def _work(self, job: _Job | None) -> None:
        """Run jobs until none is queued; then this thread's slot is free."""
        while job is not None:
            self._run(job)
            with self._lock:
                job = self._queue.popleft() if self._queue else None
                if job is None:
                    self._threads -= 1

    def _run(self, job: _Job) -> None:
        started = time.monotonic()
        if started > job.deadline:  # every caller has given up: no need to compile now
            self._finish(job, error=self._too_complex(job.structured))
            return
        entry: Grammar | InvalidInput | None
        try:
            entry = self._compile_now(job.structured)
        except InvalidInput as exc:
            entry = exc
        except HFRuntimeError as exc:  # e.g. Unsupported: not the schema's fault, not cached
            self._finish(job, error=exc)
            return
        except Exception as exc:  # a bug or a resource failure, not the client's fault
            logger.exception("compiling a JSON schema failed")
            self._finish(job, error=HFRuntimeError(f"grammar compilation failed: {exc}"))
            return
        self.stats["compiles"] += 1
        if time.monotonic() - started > self.timeout:
            entry = self._too_complex(job.structured)  # remembered: the same answer next time
        self._finish(job, entry)

    def _finish(
        self,
        job: _Job,
        entry: Grammar | InvalidInput | None = None,
        *,
        error: HFRuntimeError | None = None,
    ) -> None:
        """Publish a job's outcome: `entry` is cached (errors included), `error` is not."""
        with self._lock:
            self._inflight.pop(job.key, None)
            if error is None:
                self._store(job.key, entry)
        if error is not None or isinstance(entry, InvalidInput):
            job.future.set_exception(error or entry)  # type: ignore[arg-type]
        else:
            job.future.set_result(entry)

    def _store(self, key: CacheKey, entry: Grammar | InvalidInput | None) -> None:
        """Add to the LRU (holding self._lock), evicting to both bounds."""
        self._cache[key] = entry
        self._cached_bytes += entry.memory_bytes if isinstance(entry, Grammar) else 0
        while len(self._cache) > self._cache_entries or (
            self._cached_bytes > self._cache_bytes and len(self._cache) > 1
        ):
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.memory_bytes if isinstance(old, Grammar) else 0

    def _compile_now(self, structured: StructuredOutput) -> Grammar | None:
        """Blocking: checks, then xgrammar. InvalidInput for anything the schema causes."""
        if structured.kind in TEXT_KINDS:
            check_text_constraint(structured)
        else:
            check_structured(structured)
        compiler = self._compiler()
        try:
            compiled = _xgrammar_compile(compiler, structured)
        except (RuntimeError, ValueError, TypeError) as exc:  # how xgrammar rejects a constraint
            message = _XGRAMMAR_LOCATION.sub("", str(exc).strip()) or type(exc).__name__
            what = _WHAT.get(structured.kind, "the JSON schema")
            raise InvalidInput(
                f"{what} is not supported: {message}", param=structured.param
            ) from None
        if not self.keep_grammars:
            return None
        return Grammar(compiled, self.vocab_size, int(compiled.memory_size_bytes))

    def _compiler(self) -> Any:
        with self._xgr_lock:
            if self._xgr_compiler is None:
                self._xgr_compiler = build_xgrammar_compiler(
                    self._tokenizer, self.vocab_size, self.stop_token_ids
                )
            return self._xgr_compiler

    def compile_blocking(self, structured: StructuredOutput) -> Grammar | None:
        """Compile in the calling thread, without the cache or bounds (benchmarks, tests)."""
        return self._compile_now(structured)


def _xgrammar_compile(compiler: Any, structured: StructuredOutput) -> Any:
    """xgrammar's compiled grammar for a checked constraint, as vLLM's xgrammar backend builds
    it (so both backends accept and produce the same)."""
    kind, text = structured.kind, structured.schema or ""
    if kind == "regex":
        return compiler.compile_regex(text)
    if kind == "grammar":
        return compiler.compile_grammar(text)
    if kind == "choice":
        return compiler.compile_grammar(choice_grammar(choices(structured)))
    if kind == "structural_tag":
        return compiler.compile_structural_tag(text)
    schema = OBJECT_SCHEMA if kind == "json_object" else text
    return compiler.compile_json_schema(schema, any_whitespace=True, strict_mode=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an outcome nobody awaits any more (its caller timed out) as seen, so asyncio does
    not log "exception was never retrieved" for it."""
    if not future.cancelled():
        future.exception()


def build_xgrammar_compiler(tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> Any:
    """xgrammar's compiler for a Hugging Face tokenizer and a logits width of `vocab_size`;
    the stop tokens are the ones the grammar allows once it is complete."""
    try:
        import xgrammar
    except ImportError:
        raise Unsupported(
            "structured outputs need the xgrammar package, which is not installed here"
        ) from None

    try:
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids) or None
        )
    except Exception as exc:  # a tokenizer xgrammar cannot read: no schema will ever work
        raise Unsupported(
            f"structured outputs are not available for this model's tokenizer: {exc}"
        ) from exc
    return xgrammar.GrammarCompiler(info, max_threads=COMPILE_THREADS, cache_enabled=False)
