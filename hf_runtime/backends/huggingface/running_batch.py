"""The sequences the huggingface generation engine is decoding, stepped together.

`RunningBatch` belongs to the engine thread (generation_engine.HFGenerationEngine, which
schedules: it admits waiting sequences and hands them to `step`). Each `step`
  1. prefills the admitted sequences together, prompts of similar length in one forward pass
     (`prefill.prefill_groups`), and sends their first tokens at once,
  2. runs ONE decoding step for every running sequence together (`decode_batch`),
  3. picks each row's token: one batched argmax for the rows that are plain greedy, the
     sequence's own sampler for the others; drops rows that finished, failed or were aborted.
An exception while processing one sequence ends that sequence with the error; a failed shared
forward pass fails the rows it carried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hf_runtime.backends.huggingface.decode_batch import DecodeBatch
from hf_runtime.backends.huggingface.delivery import Outbox
from hf_runtime.backends.huggingface.prefill import prefill_groups
from hf_runtime.decoding.detokenize import TokenTextCache
from hf_runtime.decoding.grammar import Grammar
from hf_runtime.decoding.sampling import SampledToken
from hf_runtime.decoding.sequence import SequenceState
from hf_runtime.errors import HFRuntimeError
from hf_runtime.types import GenerationDelta, GenerationRequest

logger = logging.getLogger("hf_runtime")

# Prompt tokens prefilled per loop iteration (at least one prompt), and padded tokens in one
# prefill pass: bounds how long running sequences wait for a step while a burst of new prompts
# is admitted.
PREFILL_TOKEN_BUDGET = 4096


@dataclass(eq=False)
class EngineSequence:
    """Engine-side record of one `generate` call."""

    request: GenerationRequest
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[GenerationDelta | BaseException]
    enqueued: float = 0.0  # time.perf_counter() when it joined the waiting queue
    aborted: bool = False  # set by the consumer (any thread), read by the engine thread
    state: SequenceState | None = field(default=None, repr=False)  # built in the engine thread
    grammar: Grammar | None = field(default=None, repr=False)  # compiled constraint, shared


class RunningBatch:
    """The running sequences, in the row order of their `DecodeBatch`. Engine thread only."""

    def __init__(
        self,
        batch: DecodeBatch,
        outbox: Outbox,
        *,
        name: str,
        tokenizer: Any,
        token_texts: TokenTextCache,
        vocab_size: int,
        eos_token_ids: frozenset[int],
        device: torch.device,
        is_encoder_decoder: bool,
    ) -> None:
        self.batch = batch
        self.sequences: list[EngineSequence] = []
        self._outbox = outbox
        self._name = name
        self._tokenizer = tokenizer
        self._token_texts = token_texts
        self._vocab_size = vocab_size
        self._eos_token_ids = eos_token_ids
        self._device = device
        self._is_encoder_decoder = is_encoder_decoder
        # Observability: shared decoding steps, and the sequences they carried;
        # sequences / steps > 1 means requests really shared passes.
        self.counters = {"decode_steps": 0, "decoded_sequences": 0, "largest_decode_batch": 0}

    def __len__(self) -> int:
        return len(self.sequences)

    def step(self, admitted: Sequence[EngineSequence]) -> None:
        """Drop aborted rows, prefill the admitted sequences, then decode one token for each."""
        self._retain([i for i, seq in enumerate(self.sequences) if not seq.aborted])
        self._prefill(admitted)
        self._outbox.flush()  # first tokens go out now, not after the step below
        if not self.sequences:
            return
        try:
            logits = self.batch.decode()
        except Exception as exc:  # the shared forward failed: every row in it fails
            logger.exception("model %s: decoding step failed", self._name)
            self.fail_all(_as_runtime_error(exc))
            return
        counters = self.counters
        counters["decode_steps"] += 1
        counters["decoded_sequences"] += len(self.sequences)
        counters["largest_decode_batch"] = max(
            counters["largest_decode_batch"], len(self.sequences)
        )
        keep = self._sample(self.sequences, logits)
        for index, token_id in keep:
            self.batch.set_next(index, token_id)
        self._retain([index for index, _ in keep])

    def fail_all(self, error: HFRuntimeError) -> None:
        """End every running sequence with `error` and empty the batch."""
        for seq in self.sequences:
            self._outbox.put(seq, error)
        self.sequences = []
        self.batch.reset()

    def _prefill(self, admitted: Sequence[EngineSequence]) -> None:
        """Admitted sequences join the batch, prompts of similar length prefilled together;
        a prefill that fails fails the prompts it carried."""
        started = [seq for seq in admitted if self._start(seq)]
        # Grouped by the tokens each must compute: a prefix cache hit computes only its rest.
        lengths = [
            len(ids) - self.batch.cached_length(ids)
            for ids in (seq.request.prompt_token_ids for seq in started)
        ]
        for indices in prefill_groups(lengths, PREFILL_TOKEN_BUDGET):
            group = [started[i] for i in indices]
            try:
                logits, prefilled = self.batch.prefill(
                    [seq.request.prompt_token_ids for seq in group]
                )
            except Exception as exc:
                for seq in group:
                    self._fail(seq, exc)
                continue
            keep = self._sample(group, logits)
            self.batch.add(prefilled, [i for i, _ in keep], [token for _, token in keep])
            self.sequences.extend(group[i] for i, _ in keep)

    def _start(self, seq: EngineSequence) -> bool:
        try:
            seq.state = SequenceState(
                seq.request,
                max_tokens=seq.max_tokens,
                tokenizer=self._tokenizer,
                token_texts=self._token_texts,
                vocab_size=self._vocab_size,
                eos_token_ids=self._eos_token_ids,
                device=self._device,
                detokenizer_context=not self._is_encoder_decoder,
                grammar=seq.grammar,
            )
        except Exception as exc:
            self._fail(seq, exc)
            return False
        return True

    def _sample(
        self, seqs: Sequence[EngineSequence], logits: torch.Tensor
    ) -> list[tuple[int, int]]:
        """Each row's next token, its delta queued for the consumer; (row, token) of the rows
        that go on. Plain greedy rows take one argmax together (no per-row processing)."""
        plain = [
            i for i, seq in enumerate(seqs)
            if not seq.aborted and seq.state is not None and seq.state.plain_greedy
        ]  # fmt: skip
        greedy: dict[int, int] = {}
        if plain:
            rows = logits if len(plain) == len(seqs) else logits[plain]
            greedy = dict(
                zip(plain, rows[:, : self._vocab_size].argmax(dim=-1).tolist(), strict=True)
            )
        keep: list[tuple[int, int]] = []
        for index, seq in enumerate(seqs):
            if seq.aborted or seq.state is None:
                continue
            token_id = greedy.get(index)
            try:
                if token_id is None:
                    result = seq.state.step(logits[index])
                else:
                    result = seq.state.append(SampledToken(token_id))
            except Exception as exc:
                self._fail(seq, exc)
                continue
            self._outbox.put(seq, result.delta)
            if not result.finished:
                keep.append((index, result.token_id))
        return keep

    def _retain(self, keep: list[int]) -> None:
        if len(keep) == len(self.sequences):
            return
        self.batch.retain(keep)
        self.sequences = [self.sequences[i] for i in keep]

    def _fail(self, seq: EngineSequence, exc: Exception) -> None:
        if not isinstance(exc, HFRuntimeError):
            logger.exception("model %s: request %s failed", self._name, seq.request.request_id)
        self._outbox.put(seq, _as_runtime_error(exc))
        seq.aborted = True


def _as_runtime_error(exc: Exception) -> HFRuntimeError:
    if isinstance(exc, HFRuntimeError):
        return exc
    error = HFRuntimeError(f"generation failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
