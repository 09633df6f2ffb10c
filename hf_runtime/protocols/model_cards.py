"""One model as `GET /v1/models` lists it: the body both the KServe V1 app (at /v1) and the
OpenAI app (at /openai/v1) answer, so either client reads either prefix.

OpenAI's four fields ({"id", "object": "model", "created", "owned_by"}); a ready generative
model that serves defaults (generation.sampling_defaults, default_max_tokens, or its
generation_config.json) also states them, so a client can see what a request that leaves a
field unset gets: `sampling_defaults` (named as the request fields; `max_tokens` there is the
default length, which is further capped by the room the prompt leaves) and `max_model_len`
(vLLM's field: prompt plus completion).
"""

from __future__ import annotations

from typing import Any

from hf_runtime.model import ServedModel, TextGenerator

OWNED_BY = "hf-runtime"


def model_card(model: ServedModel, created: int) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": model.name,
        "object": "model",
        "created": created,
        "owned_by": OWNED_BY,
    }
    generator = model.capability(TextGenerator) if model.ready else None
    if generator is not None:
        defaults = dict(generator.sampling_defaults)
        if defaults:
            card["max_model_len"] = generator.max_model_len
            card["sampling_defaults"] = defaults
    return card
