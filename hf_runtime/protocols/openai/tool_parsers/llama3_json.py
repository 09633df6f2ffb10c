"""Llama 3.1 / 3.2 / 3.3 JSON calls: `{"name": "f", "parameters": {...}}`, several separated by
`;`, optionally after `<|python_tag|>` (a special token: detokenizers that skip special tokens
leave the bare JSON, which is why a reply opening with `{` is read as calls too).

A reply that opens with a JSON object which is not a call (`{"answer": 42}`) is content.
"""

from __future__ import annotations

from enum import Enum

from hf_runtime.protocols.openai.tool_parsers.base import Extractor
from hf_runtime.protocols.openai.tool_parsers.json_scan import WHITESPACE, CallObject, Step
from hf_runtime.protocols.openai.tool_parsers.markers import MarkerMatcher

PYTHON_TAG = "<|python_tag|>"
ARGUMENTS_KEYS = ("parameters", "arguments")


class _At(Enum):
    EXPECT_CALL = 0  # at the start, after <|python_tag|>, or after a call: a `{` opens a call
    CONTENT = 1
    CALL = 2


class Llama3JsonExtractor(Extractor):
    def __init__(self) -> None:
        super().__init__()
        self._at = _At.EXPECT_CALL
        self._tag = MarkerMatcher(PYTHON_TAG)
        self._gap: list[str] = []  # read in EXPECT_CALL: the tag, separators, whitespace
        self._call: CallObject | None = None
        self._raw: list[str] = []

    def _bulk(self, text: str, start: int) -> int:
        if self._at is _At.CONTENT and not self._tag.pending:
            return self._content_until(text, start, "<")
        if self._at is _At.CALL and self._call is not None:
            taken = self._call.take(text, start)
            self._raw.append(text[start : start + taken])
            return taken
        return 0

    def _push(self, ch: str) -> None:
        if self._at is _At.CALL:
            self._push_call(ch)
        elif self._at is _At.EXPECT_CALL:
            if ch in WHITESPACE or (ch == ";" and self._kept_any):
                self._gap.append(ch)
            elif ch == "{":
                self._call = CallObject(ARGUMENTS_KEYS)
                self._raw = [self._begin_call(self._call), *self._gap]
                self._gap = []
                self._at = _At.CALL
                self._push_call(ch)
            else:
                self._to_content(ch)
        else:
            released, marker = self._tag.push(ch)
            if released:
                self._text(released)
            if marker:
                self._gap = [marker]
                self._at = _At.EXPECT_CALL

    def _to_content(self, ch: str) -> None:
        """Not a call after all: the gap read so far is content (after a call, a separator
        and whitespace are just dropped)."""
        gap, self._gap = "".join(self._gap), []
        self._at = _At.CONTENT
        if not self._kept_any or gap.strip(WHITESPACE + ";"):
            self._text(gap)
        self._push(ch)

    def _push_call(self, ch: str) -> None:
        assert self._call is not None
        step = self._call.push(ch)
        if step is Step.FAILED:
            self._fail_call("".join(self._raw))
            self._call, self._raw = None, []
            self._at = _At.CONTENT
            self._push(ch)
            return
        if step is Step.ENDED_BEFORE:
            self._after_call()
            self._push(ch)
            return
        self._raw.append(ch)
        if step is Step.DONE:
            self._after_call()

    def _after_call(self) -> None:
        self._keep_call()
        self._call, self._raw = None, []
        self._at = _At.EXPECT_CALL

    def _end(self) -> None:
        if self._at is _At.CALL:
            assert self._call is not None
            if self._call.finish() is Step.DONE or self._call.ready:
                self._keep_call()
            else:
                self._fail_call("".join(self._raw))
        elif self._at is _At.EXPECT_CALL:
            gap = "".join(self._gap)
            if not self._kept_any:
                self._text(gap)
        else:
            self._text(self._tag.release())
