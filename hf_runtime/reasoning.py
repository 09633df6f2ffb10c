"""Reasoning models' output split into reasoning and content (`generation.reasoning_parser`).

A leaf, pure Python and protocol-neutral: the chat, Responses and Messages routes of both
backends read a sequence's text through the same `ReasoningSplitter`, so there is one
implementation, and it works on the text the engine streams (no tokenizer): a tag arrives whole
(one token) or split over several deltas, and a split tag is held back until it is complete or
can no longer become one. Nothing of a tag is ever returned.

The names and semantics are vLLM's (its `--reasoning-parser`, as of vLLM 0.32):
- `deepseek_r1`: the text up to `</think>` is reasoning, the rest content. The `<think>` opening
  may be absent (DeepSeek-R1's chat template puts it in the prompt); a `<think>` inside the
  reasoning is dropped; with no `</think>` (cut off by max_tokens) everything is reasoning.
- `qwen3`: the same while thinking, and also `<tool_call>` ends the reasoning (it stays in the
  content, for the tool-call parser); a second `</think>` in the content is dropped. With
  `chat_template_kwargs: {"enable_thinking": false}` the model does not think: all content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass(frozen=True)
class ReasoningRules:
    """How one parser reads the text: tags dropped while reasoning, the one that ends it,
    markers that end it and are content themselves, and tags dropped from the content."""

    end: str = THINK_END
    dropped_in_reasoning: tuple[str, ...] = (THINK_START,)
    implicit_ends: tuple[str, ...] = ()
    dropped_in_content: tuple[str, ...] = ()
    honours_enable_thinking: bool = False


REASONING_PARSERS: dict[str, ReasoningRules] = {
    "deepseek_r1": ReasoningRules(),
    "qwen3": ReasoningRules(
        implicit_ends=("<tool_call>",),
        dropped_in_content=(THINK_END,),
        honours_enable_thinking=True,
    ),
}


@dataclass
class Split:
    """Text returned by one step: the reasoning part first, then the content part."""

    reasoning: str = ""
    content: str = ""

    def merge(self, later: Split) -> Split:
        return Split(self.reasoning + later.reasoning, self.content + later.content)

    @staticmethod
    def concat(parts: list[Split]) -> Split:
        """Many steps' parts in order, in linear time (merging one by one copies the text
        so far at every step: quadratic over a long reply's deltas)."""
        reasoning = "".join(part.reasoning for part in parts)
        return Split(reasoning, "".join(part.content for part in parts))


@dataclass
class ReasoningSplitter:
    """One sequence's text, fed delta by delta (a fresh splitter per sequence: it keeps state).

    `thinking`: whether the reasoning is still open. `reasoning_tokens` counts the tokens of
    the deltas that arrived while it was open (the one that closes it included).
    """

    rules: ReasoningRules
    thinking: bool = True
    reasoning_tokens: int = 0
    _pending: str = field(default="", repr=False)

    def feed(self, text: str, tokens: int = 0) -> Split:
        """The parts `text` completes; a possible start of a tag stays pending."""
        if self.thinking:
            self.reasoning_tokens += tokens
        self._pending += text
        return self._drain(final=False)

    def finish(self) -> Split:
        """Release whatever is pending at the end of the sequence (an incomplete tag is text)."""
        return self._drain(final=True)

    def split(self, text: str) -> Split:
        """A whole text at once (feed + finish)."""
        return self.feed(text).merge(self.finish())

    def _markers(self) -> list[str]:
        rules = self.rules
        if self.thinking:
            return [rules.end, *rules.dropped_in_reasoning, *rules.implicit_ends]
        return list(rules.dropped_in_content)

    def _drain(self, *, final: bool) -> Split:
        out = Split()
        while True:
            markers = self._markers()
            at, marker = _first(self._pending, markers)
            if marker is None:
                keep = 0 if final else _held_back(self._pending, markers)
                cut = len(self._pending) - keep
                self._emit(out, self._pending[:cut])
                self._pending = self._pending[cut:]
                return out
            self._emit(out, self._pending[:at])
            rest = self._pending[at + len(marker) :]
            if self.thinking and marker in self.rules.implicit_ends:
                rest = self._pending[at:]  # the marker itself is content
            if self.thinking and (marker == self.rules.end or marker in self.rules.implicit_ends):
                self.thinking = False
            self._pending = rest

    def _emit(self, out: Split, text: str) -> None:
        if self.thinking:
            out.reasoning += text
        else:
            out.content += text


def _first(text: str, markers: list[str]) -> tuple[int, str | None]:
    """The earliest marker in `text` and where it starts ((-1, None) if none is there)."""
    best: tuple[int, str | None] = (-1, None)
    for marker in markers:
        at = text.find(marker)
        if at >= 0 and (best[1] is None or at < best[0]):
            best = (at, marker)
    return best


def _held_back(text: str, markers: list[str]) -> int:
    """Length of the longest suffix of `text` that could still grow into one of `markers`."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


def reasoning_splitter(
    parser: str | None, chat_template_kwargs: dict[str, object] | None = None
) -> ReasoningSplitter | None:
    """A splitter for one sequence of a model configured with `parser`, or None when the text
    is not split (no parser; qwen3 with enable_thinking false). A name not in REASONING_PARSERS
    is a KeyError (the configuration admits only those)."""
    if parser is None:
        return None
    rules = REASONING_PARSERS[parser]
    kwargs = chat_template_kwargs or {}
    if rules.honours_enable_thinking and kwargs.get("enable_thinking") is False:
        return None  # the model answers without thinking: its text is left as it is
    return ReasoningSplitter(rules)
