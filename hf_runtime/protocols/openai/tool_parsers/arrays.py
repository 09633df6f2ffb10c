"""A JSON array of call objects, `[{"name": ..., "arguments": {...}}, ...]`: Mistral's older
format (after `[TOOL_CALLS]`) and what `tool_choice: "required"` makes the model write."""

from __future__ import annotations

from enum import Enum

from hf_runtime.protocols.openai.tool_parsers.base import Extractor
from hf_runtime.protocols.openai.tool_parsers.json_scan import WHITESPACE, CallObject, Step


class _In(Enum):
    EXPECT_OBJECT = 0
    OBJECT = 1
    AFTER_OBJECT = 2


class CallArray(Extractor):
    """Array reading for a format: `_array_start` once its `[` was read, then `_array_push`
    for each character until it returns False (the array is over; the character, if
    `consumed` is False, belongs to what follows)."""

    arguments_keys: tuple[str, ...] = ("arguments",)

    def __init__(self) -> None:
        super().__init__()
        self._in = _In.EXPECT_OBJECT
        self._object: CallObject | None = None
        self._raw: list[str] = []
        self._kept_in_array = 0

    def _array_start(self, prefix: str) -> None:
        """`prefix`: the text that opened the array (restored as content if nothing in it
        turns out to be a call)."""
        self._in = _In.EXPECT_OBJECT
        self._raw = [prefix]
        self._kept_in_array = 0

    def _array_bulk(self, text: str, start: int) -> int:
        """`_bulk` inside the array: a run of an object's value at once."""
        if self._in is not _In.OBJECT or self._object is None:
            return 0
        taken = self._object.take(text, start)
        self._raw.append(text[start : start + taken])
        return taken

    def _array_push(self, ch: str) -> tuple[bool, bool]:
        """(the array goes on, `ch` was consumed)."""
        if self._in is _In.OBJECT:
            return self._push_object(ch)
        if ch in WHITESPACE:
            self._raw.append(ch)
            return True, True
        if self._in is _In.EXPECT_OBJECT:
            if ch == "{":
                self._object = CallObject(self.arguments_keys)
                held = self._begin_call(self._object)
                self._raw.insert(0, held)
                self._in = _In.OBJECT
                return self._push_object(ch)
            if ch == "]":  # an empty array (no call), or a trailing comma (dropped)
                if self._kept_in_array == 0:
                    self._text("".join(self._raw) + ch)
                self._raw = []
                return False, True
            return self._fail_array(ch)
        # after an object
        if ch == ",":
            self._raw = [ch]
            self._in = _In.EXPECT_OBJECT
            return True, True
        if ch == "]":
            return False, True
        return False, False  # lenient: a missing `]` ends the array

    def _push_object(self, ch: str) -> tuple[bool, bool]:
        assert self._object is not None
        step = self._object.push(ch)
        if step is Step.FAILED:
            return self._fail_array(ch)
        if step is Step.ENDED_BEFORE:
            self._keep()
            return self._array_push(ch)
        self._raw.append(ch)
        if step is Step.DONE:
            self._keep()
        return True, True

    def _keep(self) -> None:
        self._keep_call()
        self._kept_in_array += 1
        self._object = None
        self._raw = []
        self._in = _In.AFTER_OBJECT

    def _fail_array(self, ch: str) -> tuple[bool, bool]:
        """Malformed from here: the element's text is content and the array is over; `ch` is
        handed back to the format."""
        raw = "".join(self._raw)
        if self._object is not None:
            self._fail_call(raw)
        else:
            self._text(raw)
        self._object = None
        self._raw = []
        return False, False

    def _array_end(self) -> None:
        """The text ended inside the array."""
        if self._in is _In.OBJECT:
            assert self._object is not None
            if self._object.finish() is Step.DONE or self._object.ready:
                self._keep_call()
            else:
                self._fail_call("".join(self._raw))
        elif self._in is _In.EXPECT_OBJECT and self._kept_in_array == 0:
            self._text("".join(self._raw))
        self._raw = []
        self._object = None
