"""Turning a validated request into engine sequences: SamplingParams and per-choice seeds."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hf_runtime.protocols.openai.schemas import SamplingFields
from hf_runtime.types import GenerationRequest, SamplingParams, StructuredOutput

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
    request: SamplingFields,
    *,
    max_tokens: int | None,
    logprobs: int | None,
    defaults: Mapping[str, float | int] | None = None,
    structured: StructuredOutput | None = None,
) -> SamplingParams:
    """SamplingParams for choice 0. A field the request leaves unset (`None`) takes the model's
    default (`defaults`: its configured and generation_config.json values,
    `TextGenerator.sampling_defaults`), else OpenAI's; one the request sets keeps its own
    (vLLM's order). The default max_tokens
    is left to the model, which caps it by the room the prompt leaves. `structured`: the
    grammar the reply follows (response_format, or a forced tool call)."""
    openai = SamplingParams()
    model = defaults or {}

    def pick(name: str) -> float:
        value = getattr(request, name)
        return float(model.get(name, getattr(openai, name)) if value is None else value)

    top_k = request.top_k if request.top_k is not None else int(model.get("top_k", 0))
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=pick("temperature"),
        top_p=pick("top_p"),
        top_k=max(top_k, 0),  # -1 and 0 both disable it
        min_p=pick("min_p"),
        seed=request.seed,
        presence_penalty=pick("presence_penalty"),
        frequency_penalty=pick("frequency_penalty"),
        repetition_penalty=pick("repetition_penalty"),
        logit_bias=request.token_logit_bias(),
        stop=request.stop_strings(),
        stop_token_ids=list(request.stop_token_ids or []),
        ignore_eos=bool(request.ignore_eos),
        min_tokens=openai.min_tokens if request.min_tokens is None else int(request.min_tokens),
        logprobs=logprobs,
        structured=structured,
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
