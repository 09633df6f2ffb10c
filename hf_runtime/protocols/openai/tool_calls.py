"""One chat choice's text read as OpenAI tool calls: the message of a whole answer, or the
`delta` fields of a stream, and the finish_reason OpenAI gives with them.

A reasoning model's thinking (`generation.reasoning_parser`) is split off first, by the
protocol-neutral hf_runtime.reasoning splitter: it is returned as `reasoning` and, the same
text, `reasoning_content` (vLLM's current and earlier names; DeepSeek's API and many clients
read the latter), and only the content after it is read for tool calls.

finish_reason: "tool_calls" when "auto" or "required" produced calls and the model stopped by
itself (vLLM and OpenAI do the same); a named function keeps "stop"; a reply cut off by
max_tokens keeps "length" whatever it holds.
"""

from __future__ import annotations

import logging
from typing import Any

from hf_runtime.errors import Unsupported
from hf_runtime.protocols.openai.structured import PARSER_KEY, ToolPlan
from hf_runtime.protocols.openai.tool_parsers import (
    PARSERS,
    CallDelta,
    Delta,
    Extractor,
    NamedCallExtractor,
    RequiredCallsExtractor,
    extract,
)
from hf_runtime.reasoning import ReasoningSplitter, Split

logger = logging.getLogger("hf_runtime.openai")
REASONING_FIELDS = ("reasoning", "reasoning_content")


def check_parser(plan: ToolPlan, parser: str | None, model: str) -> ToolPlan:
    """The plan for this model (see ToolPlan.with_parser), its parser known to exist."""
    plan = plan.with_parser(parser, model)
    if plan.mode == "auto" and parser not in PARSERS:
        raise Unsupported(
            f"model {model} is configured with tool-call parser {parser!r}, which this server "
            f"does not have ({PARSER_KEY}: {', '.join(PARSERS)})",
            param="tool_choice",
        )
    return plan


class ChoiceCalls:
    """Reads one choice's text according to the request's ToolPlan (a fresh one per choice:
    readers keep state); `reasoning`: the choice's reasoning splitter, if any."""

    def __init__(
        self, plan: ToolPlan, parser: str | None, reasoning: ReasoningSplitter | None = None
    ) -> None:
        self._plan = plan
        self._extractor: Extractor | None = _extractor(plan, parser)
        self._reasoning = reasoning
        self._called = False

    @property
    def reasoning_tokens(self) -> int:
        """Tokens of the deltas read while the reasoning was open (0 without a splitter)."""
        return self._reasoning.reasoning_tokens if self._reasoning is not None else 0

    # ------------------------------------------------------------------ whole answers

    def message(self, text: str, pieces: list[tuple[str, int]] | None = None) -> dict[str, Any]:
        """The assistant message for a whole reply; `pieces`: the same text as the engine's
        deltas (text, token count), for counting reasoning tokens."""
        if self._reasoning is None:
            return self._content_message(text)
        steps = pieces if pieces is not None else [(text, 0)]
        parts = [self._reasoning.feed(piece, tokens) for piece, tokens in steps]
        split = Split.concat([*parts, self._reasoning.finish()])
        message = self._content_message(split.content)
        if split.reasoning:
            message.update(_reasoning_fields(split.reasoning))
        return message

    def _content_message(self, text: str) -> dict[str, Any]:
        if self._extractor is None:
            return {"role": "assistant", "content": text}
        try:
            found = extract(self._extractor, text)
        except Exception:  # a parser bug must not cost the reply: it is content then
            logger.exception("tool-call parsing failed; the reply is returned as content")
            return {"role": "assistant", "content": text}
        calls = found.calls if self._plan.parallel else found.calls[:1]
        if not calls:
            return {"role": "assistant", "content": found.content}
        self._called = True
        return {
            "role": "assistant",
            "content": found.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ],
        }

    # ------------------------------------------------------------------ streams

    def delta(self, text: str, finished: bool, tokens: int = 0) -> dict[str, Any]:
        """The `delta` fields for the text of one engine delta ({} while text is held back);
        `finished`: this is the sequence's last delta; `tokens`: its token count. Reasoning
        comes first (`reasoning`, `reasoning_content`), then the content's fields."""
        if self._reasoning is None:
            return self._content_delta(text, finished)
        split = self._reasoning.feed(text, tokens)
        if finished:
            split = split.merge(self._reasoning.finish())
        fields = _reasoning_fields(split.reasoning) if split.reasoning else {}
        return {**fields, **self._content_delta(split.content, finished)}

    def _content_delta(self, text: str, finished: bool) -> dict[str, Any]:
        if self._extractor is None:
            return {"content": text} if text else {}
        try:
            found = self._extractor.feed(text)
            if finished:
                found = found.merge(self._extractor.finish())
        except Exception:
            logger.exception("tool-call parsing failed mid-stream; the rest is content")
            self._extractor = None
            return {"content": text} if text else {}
        return self._fields(found)

    def _fields(self, found: Delta) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if found.content:
            fields["content"] = found.content
        parts = [p for p in found.calls if self._plan.parallel or p.index == 0]
        if parts:
            self._called = True
            fields["tool_calls"] = [_call_delta(part) for part in parts]
        return fields

    def finish_reason(self, engine_reason: str | None) -> str | None:
        """OpenAI's finish_reason for this choice, given the engine's."""
        if engine_reason == "stop" and self._called and self._plan.mode in ("auto", "required"):
            return "tool_calls"
        return engine_reason


def _reasoning_fields(text: str) -> dict[str, str]:
    return dict.fromkeys(REASONING_FIELDS, text)


def _call_delta(part: CallDelta) -> dict[str, Any]:
    if part.id is None:
        return {"index": part.index, "function": {"arguments": part.arguments}}
    return {
        "index": part.index,
        "id": part.id,
        "type": "function",
        "function": {"name": part.name, "arguments": part.arguments},
    }


def _extractor(plan: ToolPlan, parser: str | None) -> Extractor | None:
    if plan.mode == "named":
        assert plan.function is not None
        return NamedCallExtractor(plan.function)
    if plan.mode == "required":
        return RequiredCallsExtractor()
    if plan.mode == "auto" and parser is not None and parser in PARSERS:
        return PARSERS[parser]()
    return None
