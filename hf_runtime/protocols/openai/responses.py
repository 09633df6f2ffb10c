"""Response envelopes and usage accounting shared by completions and chat."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from hf_runtime.observability.logs import shorten
from hf_runtime.protocols.openai.choice_streams import prompt_token_total
from hf_runtime.protocols.openai.request_params import SequenceSpec, new_request_id
from hf_runtime.protocols.openai.schemas import OpenAIRequest
from hf_runtime.types import GenerationDelta

logger = logging.getLogger("hf_runtime.openai")


# Field names are the client's text: log a bounded number of them, each bounded, and any name
# that is not a plain identifier repr()'d (quoted, control characters escaped), so no name can
# flood the log, forge a line, or pass for two names.
MAX_LOGGED_FIELDS = 16
MAX_LOGGED_FIELD_CHARS = 64
_PLAIN_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_LOGGED_FIELD_CHARS}}}")


def _shown_name(name: str) -> str:
    if _PLAIN_NAME.fullmatch(name):
        return name
    return repr(shorten(name, MAX_LOGGED_FIELD_CHARS))


def log_ignored_fields(body: OpenAIRequest, route: str) -> None:
    ignored = body.ignored_fields()
    if not ignored or not logger.isEnabledFor(logging.WARNING):
        return
    names = [_shown_name(name) for name in ignored[:MAX_LOGGED_FIELDS]]
    if len(ignored) > MAX_LOGGED_FIELDS:
        names.append(f"... {len(ignored) - MAX_LOGGED_FIELDS} more")
    logger.warning(
        "%s: ignoring %d unsupported request field(s): %s", route, len(ignored), ", ".join(names)
    )


@dataclass(frozen=True)
class Envelope:
    """The fields every body and chunk of one response repeats."""

    id: str
    object: str
    created: int
    model: str

    @classmethod
    def new(cls, id_prefix: str, object_name: str, model: str) -> Envelope:
        return cls(new_request_id(id_prefix), object_name, int(time.time()), model)

    def body(self, **fields: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            **fields,
        }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass
class StreamUsage:
    """Token counts accumulated while streaming (one per response, never shared)."""

    specs: list[SequenceSpec]
    completion_tokens: int = 0
    reported_prompt_tokens: dict[int, int] = field(default_factory=dict)

    def add(self, index: int, delta: GenerationDelta) -> None:
        self.completion_tokens += len(delta.token_ids)
        if delta.prompt_tokens and index not in self.reported_prompt_tokens:
            self.reported_prompt_tokens[index] = delta.prompt_tokens

    def as_dict(self) -> dict[str, int]:
        prompt_tokens = prompt_token_total(self.specs, self.reported_prompt_tokens)
        return usage(prompt_tokens, self.completion_tokens)
