"""Mistral calls, both generations:
  - tokenizers before v11 (Mistral 7B v0.3, Mixtral): `[TOOL_CALLS] [{"name": "f",
    "arguments": {...}}, ...]`;
  - v11 and later (Mistral Small 3.x, Devstral, Magistral): `[TOOL_CALLS]f[ARGS]{...}`, one
    marker per call, optionally `[TOOL_CALLS]f[CALL_ID]abc123xyz[ARGS]{...}`.
`[TOOL_CALLS]` is a special token: where the detokenizer drops it, a reply that opens with a
JSON array of call objects is still read as calls. Ids are 9 alphanumerics, the only ids
Mistral's chat templates accept back.
"""

from __future__ import annotations

from enum import Enum

from hf_runtime.protocols.openai.tool_parsers.arrays import CallArray
from hf_runtime.protocols.openai.tool_parsers.base import NamedArguments, new_mistral_call_id
from hf_runtime.protocols.openai.tool_parsers.json_scan import (
    WHITESPACE,
    JsonValue,
    Step,
    loads_object,
)
from hf_runtime.protocols.openai.tool_parsers.markers import MarkerMatcher

TOOL_CALLS, ARGS, CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class _At(Enum):
    START = 0  # leading whitespace: a `[` may open a bare array of calls
    START_BRACKET = 1  # read `[` at the start: a `{` makes it an array of calls
    CONTENT = 2
    AFTER_MARKER = 3  # read [TOOL_CALLS]: an array, an object or a name follows
    ARRAY = 4
    NAME = 5
    CALL_ID = 6
    ARGUMENTS = 7


class MistralExtractor(CallArray):
    new_id = staticmethod(new_mistral_call_id)

    def __init__(self) -> None:
        super().__init__()
        self._at = _At.START
        self._marker = MarkerMatcher(TOOL_CALLS)
        self._separator = MarkerMatcher(ARGS, CALL_ID)
        self._prefix: list[str] = []  # read since the marker (or the start), not yet a call
        self._named: NamedArguments | None = None
        self._value: JsonValue | None = None

    def _bulk(self, text: str, start: int) -> int:
        if self._at is _At.CONTENT and not self._marker.pending:
            return self._content_until(text, start, "[")
        if self._at is _At.ARRAY:
            return self._array_bulk(text, start)
        if self._at is _At.ARGUMENTS and self._named is not None and self._value is not None:
            taken = self._value.take(text, start)
            part = text[start : start + taken]
            self._prefix.append(part)
            self._named.add(part)
            return taken
        return 0

    def _push(self, ch: str) -> None:
        at = self._at
        if at is _At.ARRAY:
            going_on, consumed = self._array_push(ch)
            if not going_on:
                self._at = _At.CONTENT
                if not consumed:
                    self._push(ch)
        elif at is _At.START:
            if ch in WHITESPACE:
                self._text(ch)
            elif ch == "[":
                self._prefix = [ch]
                self._at = _At.START_BRACKET
            else:
                self._reread(ch)
        elif at is _At.START_BRACKET:
            if ch in WHITESPACE:
                self._prefix.append(ch)
            elif ch == "{":
                self._open_array(ch)
            else:
                self._reread(ch)
        elif at is _At.CONTENT:
            released, marker = self._marker.push(ch)
            if released:
                self._text(released)
            if marker:
                self._prefix = [marker]
                self._at = _At.AFTER_MARKER
        elif at is _At.AFTER_MARKER:
            self._after_marker(ch)
        else:
            self._push_named(ch)

    def _reread(self, ch: str) -> None:
        """What was held is not the start of a call: read it again as content."""
        held, self._prefix = "".join(self._prefix), []
        self._at = _At.CONTENT
        for c in held + ch:
            self._push(c)

    def _open_array(self, ch: str = "") -> None:
        """The array began (its `[` is in the prefix); `ch` is read in it."""
        prefix, self._prefix = "".join(self._prefix), []
        self._array_start(prefix)
        self._at = _At.ARRAY
        if ch:
            self._push(ch)

    def _after_marker(self, ch: str) -> None:
        if ch in WHITESPACE:
            self._prefix.append(ch)
        elif ch == "[":
            self._prefix.append(ch)
            self._open_array()
        elif ch == "{":  # one call object without an array around it: read as an array of one
            self._open_array(ch)
        elif ch in _NAME_CHARS:
            self._named = NamedArguments()
            held = self._begin_call(self._named)
            self._prefix.insert(0, held)
            self._prefix.append(ch)
            self._at = _At.NAME
        else:
            self._fail(ch)

    def _push_named(self, ch: str) -> None:
        assert self._named is not None
        self._prefix.append(ch)
        if self._at is _At.ARGUMENTS:
            assert self._value is not None
            if not self._value.started and ch in WHITESPACE:
                return
            step = self._value.push(ch)
            if step is Step.FAILED or (self._value.first != "{"):
                self._prefix.pop()
                self._fail(ch)
                return
            self._named.add(ch)
            if step is Step.DONE:
                if loads_object(self._named.arguments_text) is None:
                    self._fail("")
                    return
                self._keep_call()
                self._named, self._value, self._prefix = None, None, []
                self._at = _At.CONTENT
            return
        if self._at is _At.NAME and not self._separator.pending and ch in _NAME_CHARS:
            return
        if self._at is _At.NAME and not self._separator.pending and ch == "{":
            self._named.name = _name_of(self._prefix)
            self._start_arguments(ch)
            return
        if self._at is _At.CALL_ID and not self._separator.pending and ch != "[":
            return
        _, marker = self._separator.push(ch)
        if marker == ARGS:
            if self._named.name is None:
                self._named.name = _name_of(self._prefix)
            self._at = _At.ARGUMENTS
            self._value = JsonValue()
        elif marker == CALL_ID and self._at is _At.NAME:
            self._named.name = _name_of(self._prefix)
            self._at = _At.CALL_ID
        elif marker is not None or not self._separator.pending:
            self._prefix.pop()
            self._fail(ch)

    def _start_arguments(self, ch: str) -> None:
        assert self._named is not None
        self._at = _At.ARGUMENTS
        self._value = JsonValue()
        self._value.push(ch)
        self._named.add(ch)

    def _fail(self, ch: str) -> None:
        raw, self._prefix = "".join(self._prefix), []
        if self._named is not None:
            self._fail_call(raw)
        else:
            self._text(raw)
        self._named, self._value = None, None
        self._separator.release()
        self._at = _At.CONTENT
        for c in ch:
            self._push(c)

    def _end(self) -> None:
        at = self._at
        if at is _At.ARRAY:
            self._array_end()
        elif at is _At.CONTENT:
            self._text(self._marker.release())
        elif at is _At.ARGUMENTS and self._named is not None and self._named.ready:
            self._keep_call()
        elif self._named is not None:
            self._fail_call("".join(self._prefix))
        else:
            self._text("".join(self._prefix))


def _name_of(prefix: list[str]) -> str | None:
    """The name in `[TOOL_CALLS]name...`: the name characters after the marker."""
    text = "".join(prefix)
    start = text.rfind(TOOL_CALLS)
    tail = text[start + len(TOOL_CALLS) :].lstrip(WHITESPACE) if start >= 0 else text
    name = ""
    for c in tail:
        if c not in _NAME_CHARS:
            break
        name += c
    return name or None
