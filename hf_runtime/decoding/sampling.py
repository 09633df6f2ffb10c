"""Per-sequence logits processing, sampling and logprobs (OpenAI / vLLM semantics).

Everything here works on one sequence's 1-D float32 logits row, so a batch can mix requests
with different parameters, and a bad request fails alone. Randomness comes from a
`torch.Generator` owned by the sequence (seeded from the request, or from the OS when it has no
seed): no process-global seed is ever set, so one request's seed never affects another's.

Order (vLLM's): logit_bias, min_tokens masking, penalties, then temperature, top_k, top_p,
min_p. Logprobs are the model's raw log-softmax (before any processing), as vLLM reports them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch

from hf_runtime.errors import InvalidInput
from hf_runtime.types import SamplingParams

# Most alternatives per token: OpenAI allows 20 (top_logprobs) and completions 5.
MAX_LOGPROBS = 20


def validate_sampling_params(params: SamplingParams, vocab_size: int) -> None:
    """Reject values that cannot be applied, naming the field. The protocol layer validates
    too; this keeps a bad value from failing inside the engine instead of at submission."""

    def bad(param: str, message: str) -> InvalidInput:
        return InvalidInput(f"{param} {message}", param=param)

    if not math.isfinite(params.temperature) or params.temperature < 0:
        raise bad("temperature", f"must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise bad("top_p", f"must be in (0, 1], got {params.top_p}")
    if params.top_k < 0 and params.top_k != -1:
        raise bad("top_k", f"must be >= 0 (0 or -1 disables it), got {params.top_k}")
    if not 0 <= params.min_p <= 1:
        raise bad("min_p", f"must be in [0, 1], got {params.min_p}")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(params, name)
        if not math.isfinite(value) or not -2 <= value <= 2:
            raise bad(name, f"must be in [-2, 2], got {value}")
    if not math.isfinite(params.repetition_penalty) or params.repetition_penalty <= 0:
        raise bad("repetition_penalty", f"must be > 0, got {params.repetition_penalty}")
    if params.max_tokens is not None and params.max_tokens < 1:
        raise bad("max_tokens", f"must be >= 1, got {params.max_tokens}")
    if params.min_tokens < 0:
        raise bad("min_tokens", f"must be >= 0, got {params.min_tokens}")
    if params.max_tokens is not None and params.min_tokens > params.max_tokens:
        raise bad(
            "min_tokens",
            f"({params.min_tokens}) must be <= max_tokens ({params.max_tokens})",
        )
    if params.logprobs is not None and not 0 <= params.logprobs <= MAX_LOGPROBS:
        raise bad("logprobs", f"must be in [0, {MAX_LOGPROBS}], got {params.logprobs}")
    for token_id, bias in params.logit_bias.items():
        if not 0 <= int(token_id) < vocab_size:
            raise bad(
                "logit_bias", f"token id {token_id} is outside the vocabulary [0, {vocab_size})"
            )
        if not math.isfinite(bias):
            raise bad("logit_bias", f"bias for token {token_id} must be finite, got {bias}")
    for token_id in params.stop_token_ids:
        if not 0 <= token_id < vocab_size:
            raise bad("stop_token_ids", f"{token_id} is outside the vocabulary [0, {vocab_size})")
    if params.seed is not None and not -(2**63) <= params.seed < 2**64:
        raise bad("seed", "must fit in 64 bits")


@dataclass
class SampledToken:
    """The chosen token and, when asked for, its raw logprob and the top alternatives."""

    token_id: int
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)  # (token id, logprob)


class LogitsSampler:
    """Processes and samples one sequence's logits; call `observe` with each chosen token."""

    def __init__(
        self,
        params: SamplingParams,
        *,
        prompt_token_ids: Sequence[int],
        vocab_size: int,
        eos_token_ids: Collection[int],
        device: torch.device | str = "cpu",
    ) -> None:
        self.params = params
        self.vocab_size = vocab_size
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.generator.manual_seed(seed % 2**64)
        self.num_generated = 0

        self._bias_ids: torch.Tensor | None = None
        self._bias_values: torch.Tensor | None = None
        if params.logit_bias:
            ids = [int(token_id) for token_id in params.logit_bias]
            self._bias_ids = torch.tensor(ids, dtype=torch.long, device=self.device)
            self._bias_values = torch.tensor(
                [float(params.logit_bias[k]) for k in params.logit_bias], device=self.device
            )
        # min_tokens keeps every token that would end the sequence away until it is reached.
        ending = set(params.stop_token_ids)
        if not params.ignore_eos:
            ending |= set(eos_token_ids)
        ending_ids = sorted(t for t in ending if 0 <= t < vocab_size)
        self._ending_ids = torch.tensor(ending_ids, dtype=torch.long, device=self.device)

        self._uses_counts = (
            params.presence_penalty != 0
            or params.frequency_penalty != 0
            or params.repetition_penalty != 1
        )
        self._output_counts: torch.Tensor | None = None
        self._prompt_mask: torch.Tensor | None = None
        if self._uses_counts:
            self._output_counts = torch.zeros(vocab_size, device=self.device)
        if params.repetition_penalty != 1:
            prompt = torch.tensor(
                [t for t in prompt_token_ids if 0 <= t < vocab_size],
                dtype=torch.long,
                device=self.device,
            )
            self._prompt_mask = torch.zeros(vocab_size, dtype=torch.bool, device=self.device)
            self._prompt_mask[prompt] = True

    @property
    def is_greedy(self) -> bool:
        return self.params.temperature == 0

    @property
    def plain_greedy(self) -> bool:
        """Greedy, and nothing reads or changes the row (no logit_bias, penalties, pending
        min_tokens or logprobs): the raw argmax is the token, so an engine may pick it for
        many rows in one operation."""
        params = self.params
        return (
            params.temperature == 0
            and params.logprobs is None
            and self._bias_ids is None
            and not self._uses_counts
            and (self.num_generated >= params.min_tokens or not self._ending_ids.numel())
        )

    def select(self, logits: torch.Tensor) -> SampledToken:
        """Choose the next token from this sequence's raw logits row ([vocab] or wider)."""
        raw = logits[: self.vocab_size].float()
        processed = self.process(raw)
        if self.is_greedy:
            token_id = int(torch.argmax(processed))
        else:
            probs = torch.softmax(self.warp(processed), dim=-1)
            token_id = int(torch.multinomial(probs, 1, generator=self.generator))
        return self._with_logprobs(raw, token_id)

    def observe(self, token_id: int) -> None:
        self.num_generated += 1
        if self._output_counts is not None and 0 <= token_id < self.vocab_size:
            self._output_counts[token_id] += 1

    def process(self, logits: torch.Tensor) -> torch.Tensor:
        """logit_bias, min_tokens and penalties (a new tensor; the input is left alone)."""
        params = self.params
        logits = logits.clone()
        if self._bias_ids is not None and self._bias_values is not None:
            logits.index_add_(0, self._bias_ids, self._bias_values)
        if self.num_generated < params.min_tokens and self._ending_ids.numel():
            logits[self._ending_ids] = -math.inf
        if self._output_counts is not None:
            counts = self._output_counts
            if params.repetition_penalty != 1:
                assert self._prompt_mask is not None
                seen = self._prompt_mask | (counts > 0)
                penalty = params.repetition_penalty
                penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
                logits = torch.where(seen, penalised, logits)
            if params.frequency_penalty != 0:
                logits = logits - params.frequency_penalty * counts
            if params.presence_penalty != 0:
                logits = logits - params.presence_penalty * (counts > 0).to(logits.dtype)
        return logits

    def warp(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperature, top_k, top_p and min_p: the sampling distribution's logits."""
        params = self.params
        logits = logits / params.temperature
        if params.top_k > 0 and params.top_k < logits.numel():
            kth = torch.topk(logits, params.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if params.top_p < 1:
            sorted_logits, order = torch.sort(logits, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            # Drop a token when the tokens before it already reach top_p (the first always stays).
            remove_sorted = (torch.cumsum(probs, dim=-1) - probs) > params.top_p
            remove = torch.zeros_like(remove_sorted).scatter(0, order, remove_sorted)
            logits = logits.masked_fill(remove, -math.inf)
        if params.min_p > 0:
            probs = torch.softmax(logits, dim=-1)
            logits = logits.masked_fill(probs < params.min_p * probs.max(), -math.inf)
        return logits

    def _with_logprobs(self, raw: torch.Tensor, token_id: int) -> SampledToken:
        if self.params.logprobs is None:
            return SampledToken(token_id)
        logprobs = torch.log_softmax(raw, dim=-1)
        top: list[tuple[int, float]] = []
        k = min(self.params.logprobs, logprobs.numel())
        if k > 0:
            values, ids = torch.topk(logprobs, k)
            top = [(int(i), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
        return SampledToken(token_id, float(logprobs[token_id]), top)
