"""Reading JSON a character at a time, as a model writes it.

Tool-call formats embed JSON in free text, and a streamed call must be recognised while its
characters arrive. `JsonValue` finds where one JSON value ends (strings, escapes, nesting) without
validating it; `CallObject` reads one call object (`{"name": ..., "arguments": {...}}`) and keeps
the arguments' raw text, so the fragments a stream sends are exactly the text a whole-answer
parse returns. Finished values are checked with `json.loads`.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

WHITESPACE = " \t\n\r"
_SCALAR_END = WHITESPACE + ",}]"
# Runs of characters that cannot change a value's state, taken at once (speed only).
_STRING_RUN = re.compile(r'[^"\\]+')
_STRUCTURE_RUN = re.compile(r'[^"{}\[\]]+')


class Step(Enum):
    MORE = "more"  # the character was taken; the value goes on
    DONE = "done"  # the character was taken and ended the value
    ENDED_BEFORE = "ended_before"  # the value had ended: the character belongs to what follows
    FAILED = "failed"  # not what was expected here


class JsonValue:
    """Where one JSON value ends. Leading whitespace must be skipped by the caller."""

    __slots__ = ("_depth", "_escape", "_in_string", "_scalar", "started", "text")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._scalar = False
        self.started = False
        self.text: list[str] = []

    @property
    def first(self) -> str:
        return self.text[0] if self.text else ""

    def push(self, ch: str) -> Step:
        if not self.started:
            self.started = True
            if ch in "}],:" or ch in WHITESPACE:
                return Step.FAILED
            self._scalar = ch not in '{["'
        if self._scalar:
            if ch in _SCALAR_END:
                return Step.ENDED_BEFORE
            self.text.append(ch)
            return Step.MORE
        self.text.append(ch)
        if self._in_string:
            if self._escape:
                self._escape = False
            elif ch == "\\":
                self._escape = True
            elif ch == '"':
                self._in_string = False
                if self._depth == 0:
                    return Step.DONE
            return Step.MORE
        if ch == '"':
            self._in_string = True
        elif ch in "{[":
            self._depth += 1
        elif ch in "}]":
            self._depth -= 1
            if self._depth == 0:
                return Step.DONE
        return Step.MORE

    def take(self, text: str, start: int) -> int:
        """Characters from `start` taken at once inside a string or between brackets."""
        if not self.started or self._scalar or self._escape:
            return 0
        run = (_STRING_RUN if self._in_string else _STRUCTURE_RUN).match(text, start)
        if run is None:
            return 0
        self.text.append(run.group())
        return run.end() - start

    def finished_scalar(self) -> bool:
        """At the end of the text: a number or literal is complete if it has any characters."""
        return self._scalar and bool(self.text)


def loads_object(text: str) -> dict[str, Any] | None:
    """`text` as a JSON object, or None when it is not one."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _At(Enum):
    OPEN = 0
    KEY_OR_END = 1
    KEY = 2
    COLON = 3
    VALUE_START = 4
    VALUE = 5
    AFTER_VALUE = 6
    DONE = 7
    FAILED = 8


class CallObject:
    """One call object, read a character at a time: `{"name": "f", "arguments": {...}}`.

    Keys may come in any order; other keys are skipped. `arguments_parts` is the raw text of the
    first of `arguments_keys` found, as the model wrote it (an object; or a JSON string holding
    an object, some models' habit, taken once complete). `ready` says the call can be announced:
    its name is known and its arguments have begun. A complete object without both, or whose
    arguments are not an object, fails. Lenient where small models slip: a call whose name and
    arguments are complete ends at a character that cannot continue the object (a missing `}`).
    """

    def __init__(self, arguments_keys: tuple[str, ...] = ("arguments",)) -> None:
        self._keys = arguments_keys
        self._at = _At.OPEN
        self._key: list[str] = []
        self._key_value: JsonValue | None = None
        self._current = ""
        self._value: JsonValue | None = None
        self._args_key: str | None = None
        self._args_streaming = False
        self.name: str | None = None
        self.arguments_parts: list[str] = []
        self.arguments_done = False

    @property
    def ready(self) -> bool:
        return self.name is not None and bool(self.arguments_parts)

    @property
    def complete(self) -> bool:
        return self.name is not None and self.arguments_done

    def take(self, text: str, start: int) -> int:
        """Characters from `start` taken at once inside a value (see JsonValue.take)."""
        if self._at is not _At.VALUE or self._value is None:
            return 0
        taken = self._value.take(text, start)
        if taken and self._args_streaming and self._current == self._args_key:
            self.arguments_parts.append(text[start : start + taken])
        return taken

    def push(self, ch: str) -> Step:
        at = self._at
        if at is _At.VALUE:
            return self._push_value(ch)
        if at is _At.KEY:
            assert self._key_value is not None
            step = self._key_value.push(ch)
            if step is Step.DONE:
                self._current = _decoded_string(self._key_value.text) or ""
                self._at = _At.COLON
            return Step.MORE if step is not Step.FAILED else self._fail()
        if ch in WHITESPACE:
            return Step.MORE if at is not _At.DONE else Step.ENDED_BEFORE
        if at is _At.OPEN:
            if ch != "{":
                return self._fail()
            self._at = _At.KEY_OR_END
        elif at is _At.KEY_OR_END:
            if ch == '"':
                self._key_value = JsonValue()
                self._key_value.push(ch)
                self._at = _At.KEY
            elif ch == "}":
                return self._close()
            else:
                return self._ended_or_fail()
        elif at is _At.COLON:
            if ch != ":":
                return self._fail()
            self._at = _At.VALUE_START
        elif at is _At.VALUE_START:
            self._value = JsonValue()
            self._at = _At.VALUE
            return self._push_value(ch)
        elif at is _At.AFTER_VALUE:
            if ch == ",":
                self._at = _At.KEY_OR_END
            elif ch == "}":
                return self._close()
            else:
                return self._ended_or_fail()
        else:  # DONE
            return Step.ENDED_BEFORE
        return Step.MORE

    def _push_value(self, ch: str) -> Step:
        assert self._value is not None
        value = self._value
        first = not value.started
        step = value.push(ch)
        if step is Step.FAILED:
            return self._fail()
        is_args = self._current in self._keys and self._args_key is None
        if first and is_args:
            self._args_key = self._current
            if value.first != "{" and value.first != '"':
                return self._fail()
            self._args_streaming = value.first == "{"
        if (
            self._args_streaming
            and self._current == self._args_key
            and step is not Step.ENDED_BEFORE
        ):
            self.arguments_parts.append(ch)
        if step is Step.MORE:
            return step
        self._at = _At.AFTER_VALUE
        if not self._end_value():
            return self._fail()
        return self.push(ch) if step is Step.ENDED_BEFORE else Step.MORE

    def _end_value(self) -> bool:
        """Take in the value that just ended; False when it makes the call invalid."""
        assert self._value is not None
        text = "".join(self._value.text)
        if self._current == "name" and self.name is None:
            name = _decoded_string(self._value.text)
            if not name:
                return False
            self.name = name
        elif self._current == self._args_key and not self.arguments_done:
            self._args_streaming = False
            if text.startswith('"'):  # arguments sent as a JSON string holding the object
                inner = _decoded_string(self._value.text)
                if inner is None or loads_object(inner) is None:
                    return False
                self.arguments_parts = [inner]
            elif loads_object("".join(self.arguments_parts)) is None:
                return False
            self.arguments_done = True
        self._value = None
        return True

    def finish(self) -> Step:
        """The text ended: DONE if a scalar value was pending and the call is complete now."""
        if self._at is _At.VALUE and self._value is not None and self._value.finished_scalar():
            self._at = _At.AFTER_VALUE
            if not self._end_value():
                return self._fail()
        if self._at in (_At.AFTER_VALUE, _At.KEY_OR_END) and self.complete:
            self._at = _At.DONE
            return Step.DONE
        return Step.DONE if self._at is _At.DONE else Step.MORE

    def _close(self) -> Step:
        if not self.complete:
            return self._fail()
        self._at = _At.DONE
        return Step.DONE

    def _ended_or_fail(self) -> Step:
        if self.complete:
            self._at = _At.DONE
            return Step.ENDED_BEFORE
        return self._fail()

    def _fail(self) -> Step:
        self._at = _At.FAILED
        return Step.FAILED


def _decoded_string(text: list[str]) -> str | None:
    try:
        value = json.loads("".join(text))
    except ValueError:
        return None
    return value if isinstance(value, str) else None
