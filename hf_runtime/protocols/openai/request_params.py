"""Turning a validated request into engine sequences: SamplingParams and per-choice seeds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from hf_runtime.protocols.openai.schemas import SamplingFields
from hf_runtime.types import GenerationRequest, SamplingParams

_MASK64 = (1 << 64) - 1


def new_request_id(prefix: str) -> str:
    """OpenAI-style ids: `cmpl-<hex>`, `chatcmpl-<hex>`."""
    return f"{prefix}-{uuid.uuid4().hex}"


def choice_seed(seed: int | None, choice: int) -> int | None:
    """The seed for choice `choice` of a request seeded with `seed`.

    Choice 0 keeps the request's seed, so n=1 and choice 0 of n>1 agree. Later choices get a
    splitmix64 mix of (seed, choice): deterministic, distinct, and not simply seed+1 (which would
    collide with another request's seed).
    """
    if seed is None or choice == 0:
        return seed
    x = (seed + choice * 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & ((1 << 63) - 1)


def sampling_params(
    request: SamplingFields, *, max_tokens: int | None, logprobs: int | None
) -> SamplingParams:
    """SamplingParams for choice 0; `None` fields fall back to OpenAI's defaults."""
    defaults = SamplingParams()

    def pick(value: float | int | None, default: float | int) -> float | int:
        return default if value is None else value

    top_k = request.top_k if request.top_k is not None and request.top_k > 0 else 0
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=float(pick(request.temperature, defaults.temperature)),
        top_p=float(pick(request.top_p, defaults.top_p)),
        top_k=top_k,
        min_p=float(pick(request.min_p, defaults.min_p)),
        seed=request.seed,
        presence_penalty=float(pick(request.presence_penalty, defaults.presence_penalty)),
        frequency_penalty=float(pick(request.frequency_penalty, defaults.frequency_penalty)),
        repetition_penalty=float(pick(request.repetition_penalty, defaults.repetition_penalty)),
        logit_bias=request.token_logit_bias(),
        stop=request.stop_strings(),
        stop_token_ids=list(request.stop_token_ids or []),
        ignore_eos=bool(request.ignore_eos),
        min_tokens=int(pick(request.min_tokens, defaults.min_tokens)),
        logprobs=logprobs,
    )


@dataclass(frozen=True)
class SequenceSpec:
    """One engine sequence: choice `index` (OpenAI's numbering) of prompt `prompt_index`."""

    index: int
    prompt_index: int
    request: GenerationRequest


def fan_out(
    request_id: str, prompts: list[list[int]], n: int, params: SamplingParams
) -> list[SequenceSpec]:
    """One sequence per (prompt, choice), indexed prompt-major like OpenAI: i * n + j."""
    specs = []
    for i, prompt_ids in enumerate(prompts):
        for j in range(n):
            index = i * n + j
            specs.append(
                SequenceSpec(
                    index=index,
                    prompt_index=i,
                    request=GenerationRequest(
                        request_id=f"{request_id}-{index}",
                        prompt_token_ids=prompt_ids,
                        params=replace(params, seed=choice_seed(params.seed, j)),
                    ),
                )
            )
    return specs
