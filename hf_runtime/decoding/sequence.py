"""One sequence's decoding state, independent of the engine that runs the model.

An engine gives `SequenceState.step` the raw logits row for this sequence; it gets back the
chosen token and the `GenerationDelta` to stream. Finishing rules (vLLM's):
- "stop" on an EOS token (unless ignore_eos), a `stop_token_ids` token, or a stop string;
  none of them is checked before `min_tokens` tokens exist;
- "length" once `max_tokens` tokens exist;
- the ending token is counted and returned in `token_ids`, but its text is not streamed, and a
  stop string is cut from the text together with everything after it.

With a grammar (constrained decoding) the row is masked to the tokens the grammar allows before
anything else (vLLM's order), and EOS is allowed only once the output is complete. The grammar
decides where the output ends: `ignore_eos` and `min_tokens` do not apply (nothing valid could
follow a complete output, and holding EOS back would leave no token at all), stop strings and
stop_token_ids still do. A mask that leaves nothing ends the sequence ("stop", no token).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from hf_runtime.decoding.detokenize import Decoder, IncrementalDetokenizer, TokenTextCache
from hf_runtime.decoding.sampling import LogitsSampler, SampledToken
from hf_runtime.decoding.stop import StopStringMatcher
from hf_runtime.errors import HFRuntimeError
from hf_runtime.types import FinishReason, GenerationDelta, GenerationRequest, TokenLogprob

if TYPE_CHECKING:
    from hf_runtime.decoding.grammar import Grammar


@dataclass
class StepResult:
    token_id: int
    delta: GenerationDelta

    @property
    def finished(self) -> bool:
        return self.delta.finish_reason is not None


class SequenceState:
    """Sampler + detokenizer + stop matcher of one request; used from one thread at a time."""

    def __init__(
        self,
        request: GenerationRequest,
        *,
        max_tokens: int,
        tokenizer: Decoder,
        token_texts: TokenTextCache,
        vocab_size: int,
        eos_token_ids: Collection[int],
        device: torch.device | str = "cpu",
        detokenizer_context: bool = True,
        grammar: Grammar | None = None,
    ) -> None:
        params = request.params
        # Built here, in the engine thread: the matcher is this sequence's own state.
        self.grammar = grammar.matcher() if grammar is not None else None
        if grammar is not None:
            params = replace(params, ignore_eos=False, min_tokens=0)
        self.request = request
        self.max_tokens = max_tokens
        self._min_tokens = params.min_tokens
        self.sampler = LogitsSampler(
            params,
            prompt_token_ids=request.prompt_token_ids,
            vocab_size=vocab_size,
            eos_token_ids=eos_token_ids,
            device=device,
        )
        context = request.prompt_token_ids if detokenizer_context else ()
        self._detokenizer = IncrementalDetokenizer(tokenizer, context)
        self._stop = StopStringMatcher(params.stop)
        self._token_texts = token_texts
        self._eos = frozenset() if params.ignore_eos else frozenset(eos_token_ids)
        self._stop_token_ids = frozenset(params.stop_token_ids)
        self.output_ids: list[int] = []
        self.finish_reason: FinishReason | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def plain_greedy(self) -> bool:
        """The next token is the raw logits' argmax (see LogitsSampler.plain_greedy) and no
        grammar masks the row: an engine may choose it in a batched argmax and `append` it."""
        return self.grammar is None and self.sampler.plain_greedy

    def step(self, logits: torch.Tensor) -> StepResult:
        """Choose the next token from this sequence's raw logits row and advance."""
        if self.grammar is not None:
            masked = self.grammar.mask(logits)
            if masked is None:
                return self._end_without_token()
            logits = masked
        return self.append(self.sampler.select(logits))

    def append(self, sampled: SampledToken) -> StepResult:
        token_id = sampled.token_id
        if self.grammar is not None and not self.grammar.accept(token_id):
            raise HFRuntimeError(f"token {token_id} does not follow the grammar")
        self.sampler.observe(token_id)
        self.output_ids.append(token_id)
        count = len(self.output_ids)
        may_stop = count >= self._min_tokens
        stop_reason: str | int | None = None
        finish: FinishReason | None = None
        text = ""
        if may_stop and token_id in self._stop_token_ids:
            finish, stop_reason = "stop", token_id
        elif may_stop and token_id in self._eos:
            finish = "stop"
        else:
            released = self._stop.feed(self._detokenizer.add(token_id), allow_stop=may_stop)
            text = released.text
            if released.stop is not None:
                finish, stop_reason = "stop", released.stop
        if finish is None and count >= self.max_tokens:
            finish = "length"
            # The last characters may still be pending: as the sequence ends, release them.
            tail = self._stop.feed(self._detokenizer.flush(), allow_stop=True)
            text += tail.text
            if tail.stop is not None:
                finish, stop_reason = "stop", tail.stop
            else:
                text += self._stop.flush()
        elif finish is not None and not isinstance(stop_reason, str):
            # Ended by a token (EOS / stop_token_ids): pending text can no longer become a stop
            # string, so release it.
            text += self._stop.feed(self._detokenizer.flush(), allow_stop=False).text
        self.finish_reason = finish
        return StepResult(
            token_id,
            GenerationDelta(
                text=text,
                token_ids=[token_id],
                logprobs=self._logprobs(sampled),
                finish_reason=finish,
                stop_reason=stop_reason,
                prompt_tokens=len(self.request.prompt_token_ids) if count == 1 else 0,
            ),
        )

    def _end_without_token(self) -> StepResult:
        """The grammar allows no token at all: end now, releasing any pending text."""
        text = self._stop.feed(self._detokenizer.flush(), allow_stop=False).text
        self.finish_reason = "stop"
        return StepResult(
            next(iter(self._eos), 0),
            GenerationDelta(
                text=text,
                token_ids=[],
                finish_reason="stop",
                prompt_tokens=0 if self.output_ids else len(self.request.prompt_token_ids),
            ),
        )

    def _logprobs(self, sampled: SampledToken) -> list[TokenLogprob] | None:
        if sampled.logprob is None:
            return None
        text = self._token_texts.text
        return [
            TokenLogprob(
                token_id=sampled.token_id,
                token=text(sampled.token_id),
                logprob=sampled.logprob,
                top=[(token_id, text(token_id), logprob) for token_id, logprob in sampled.top],
            )
        ]
