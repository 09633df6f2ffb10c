"""Reading the calls a forced `tool_choice` made the model write under a grammar:
  - a named function: the text is its arguments object;
  - "required": `[{"name": "f", "parameters": {...}}, ...]` (vLLM's schema).
The grammar makes these well formed; an engine without one (or a model cut off early) may not,
and then the text is content, as with any malformed call.
"""

from __future__ import annotations

from hf_runtime.protocols.openai.tool_parsers.arrays import CallArray
from hf_runtime.protocols.openai.tool_parsers.base import Extractor, NamedArguments
from hf_runtime.protocols.openai.tool_parsers.json_scan import (
    WHITESPACE,
    JsonValue,
    Step,
    loads_object,
)

_START, _IN, _AFTER, _CONTENT = range(4)


class NamedCallExtractor(Extractor):
    """The reply is the arguments of `name`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._at = _START
        self._call: NamedArguments | None = None
        self._value = JsonValue()
        self._raw: list[str] = []

    def _bulk(self, text: str, start: int) -> int:
        if self._at != _IN or self._call is None:
            return 0
        taken = self._value.take(text, start)
        part = text[start : start + taken]
        self._raw.append(part)
        self._call.add(part)
        return taken

    def _push(self, ch: str) -> None:
        if self._at == _IN:
            self._push_arguments(ch)
        elif self._at == _START and ch == "{":
            self._call = NamedArguments(self._name)
            self._raw = [self._begin_call(self._call)]
            self._at = _IN
            self._push_arguments(ch)
        else:
            if self._at == _START and ch not in WHITESPACE:
                self._at = _CONTENT
            self._text(ch)

    def _push_arguments(self, ch: str) -> None:
        assert self._call is not None
        step = self._value.push(ch)
        self._raw.append(ch)
        self._call.add(ch)
        if step is Step.DONE:
            if loads_object(self._call.arguments_text) is None:
                self._fail_call("".join(self._raw))
            else:
                self._keep_call()
            self._at = _AFTER

    def _end(self) -> None:
        if self._at == _IN:
            self._keep_call()  # cut off: the arguments it got (finish_reason says "length")


class RequiredCallsExtractor(CallArray):
    """The reply is an array of calls."""

    arguments_keys = ("parameters", "arguments")

    def __init__(self) -> None:
        super().__init__()
        self._at = _START

    def _bulk(self, text: str, start: int) -> int:
        return self._array_bulk(text, start) if self._at == _IN else 0

    def _push(self, ch: str) -> None:
        if self._at == _IN:
            going_on, consumed = self._array_push(ch)
            if not going_on:
                self._at = _AFTER
                if not consumed:
                    self._push(ch)
        elif self._at == _START and ch == "[":
            self._array_start(ch)
            self._at = _IN
        else:
            if self._at == _START and ch not in WHITESPACE:
                self._at = _CONTENT
            self._text(ch)

    def _end(self) -> None:
        if self._at == _IN:
            self._array_end()
