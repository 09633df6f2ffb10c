"""Hermes / Qwen2.5 / Qwen3 calls: `<tool_call>{"name": "f", "arguments": {...}}</tool_call>`.

Text around the blocks is content; several blocks are several calls. A missing `</tool_call>`
is tolerated (the next block or the end of the text closes the call); a block whose JSON is not
a call is content.
"""

from __future__ import annotations

from enum import Enum

from hf_runtime.protocols.openai.tool_parsers.base import Extractor
from hf_runtime.protocols.openai.tool_parsers.json_scan import WHITESPACE, CallObject, Step
from hf_runtime.protocols.openai.tool_parsers.markers import MarkerMatcher

START, END = "<tool_call>", "</tool_call>"


class _At(Enum):
    CONTENT = 0
    CALL = 1  # inside <tool_call>, reading the JSON
    AFTER_CALL = 2  # the JSON is complete: whitespace, then </tool_call>


class HermesExtractor(Extractor):
    def __init__(self) -> None:
        super().__init__()
        self._at = _At.CONTENT
        self._start = MarkerMatcher(START)
        self._end_tag = MarkerMatcher(END)
        self._call: CallObject | None = None
        self._raw: list[str] = []  # the open call's text, for content if it fails

    def _bulk(self, text: str, start: int) -> int:
        if self._at is _At.CONTENT and not self._start.pending:
            return self._content_until(text, start, "<")
        if self._at is _At.CALL and self._call is not None:
            taken = self._call.take(text, start)
            self._raw.append(text[start : start + taken])
            return taken
        return 0

    def _push(self, ch: str) -> None:
        if self._at is _At.CONTENT:
            released, marker = self._start.push(ch)
            if released:
                self._text(released)
            if marker:
                self._call = CallObject()
                self._raw = [self._begin_call(self._call), START]
                self._at = _At.CALL
        elif self._at is _At.CALL:
            self._push_call(ch)
        else:
            self._push_after(ch)

    def _push_call(self, ch: str) -> None:
        assert self._call is not None
        step = self._call.push(ch)
        if step is Step.FAILED:
            self._fail(ch)
            return
        if step is Step.ENDED_BEFORE:
            self._keep_call()
            self._at = _At.AFTER_CALL
            self._push_after(ch)
            return
        self._raw.append(ch)
        if step is Step.DONE:
            self._keep_call()
            self._at = _At.AFTER_CALL

    def _push_after(self, ch: str) -> None:
        if not self._end_tag.pending and ch in WHITESPACE:
            return  # between the JSON and </tool_call>: part of the call
        released, marker = self._end_tag.push(ch)
        if marker:
            self._at = _At.CONTENT
        elif released:
            # No closing tag: what follows the call is read as content (it may open another).
            self._end_tag.release()
            self._at = _At.CONTENT
            for c in released:
                self._push(c)

    def _fail(self, ch: str) -> None:
        self._fail_call("".join(self._raw))
        self._raw = []
        self._call = None
        self._at = _At.CONTENT
        self._push(ch)  # it may begin the next block

    def _end(self) -> None:
        if self._at is _At.CONTENT:
            self._text(self._start.release())
        elif self._at is _At.CALL:
            assert self._call is not None
            if self._call.finish() is Step.DONE or self._call.ready:
                self._keep_call()
            else:
                self._fail_call("".join(self._raw))
        self._end_tag.release()
