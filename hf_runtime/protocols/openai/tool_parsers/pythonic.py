"""Pythonic calls (Llama 3.2 / 4, ToolACE, Olmo 3): the reply is a Python list of calls,
`[get_weather(city="Paris"), get_time(tz="CET")]`, optionally inside Llama 4's
`<|python_start|>` / `<|python_end|>`.

The list is parsed with `ast` (never evaluated): keyword arguments whose values are literals
(JSON's `true`/`false`/`null` accepted too) become JSON arguments. The calls are sent once the
list closes, since a Python call is not JSON that could be streamed as it is written. A reply
that is not such a list is content.
"""

from __future__ import annotations

import ast
import json
from enum import Enum
from typing import Any

from hf_runtime.protocols.openai.tool_parsers.base import Extractor, NamedArguments
from hf_runtime.protocols.openai.tool_parsers.json_scan import WHITESPACE

START_TAG, END_TAG = "<|python_start|>", "<|python_end|>"
_IDENTIFIER_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENTIFIER = _IDENTIFIER_START | frozenset("0123456789.")
_LITERAL_NAMES = {"true": True, "false": False, "null": None}
# Deciding re-reads what was held: past this many characters without `[name(`, it is content.
_MAX_UNDECIDED = 256


class _At(Enum):
    START = 0  # deciding: whitespace, <|python_start|>, `[`, a name, `(` make a call list
    LIST = 1  # inside the list, until its `]`
    AFTER = 2  # the list closed: <|python_end|> and whitespace are dropped
    CONTENT = 3


class PythonicExtractor(Extractor):
    def __init__(self) -> None:
        super().__init__()
        self._at = _At.START
        self._held: list[str] = []  # the text read while deciding, and then the list
        self._depth = 0
        self._quote = ""
        self._escape = False
        self._after = ""  # read after the list: whitespace or (part of) <|python_end|>

    def _bulk(self, text: str, start: int) -> int:
        if self._at is _At.CONTENT:
            self._text(text[start:])
            return len(text) - start
        return 0

    def _push(self, ch: str) -> None:
        if self._at is _At.CONTENT:
            self._text(ch)
        elif self._at is _At.START:
            self._held.append(ch)
            self._decide()
        elif self._at is _At.LIST:
            self._held.append(ch)
            self._scan(ch)
        else:
            self._push_after(ch)

    def _decide(self) -> None:
        if len(self._held) > _MAX_UNDECIDED:
            return self._give_up()
        text = "".join(self._held).lstrip(WHITESPACE)
        if text.startswith(START_TAG):
            text = text[len(START_TAG) :].lstrip(WHITESPACE)
        elif START_TAG.startswith(text):
            return  # still maybe the tag (or only whitespace so far)
        if not text:
            return
        if text[0] != "[":
            return self._give_up()
        name = text[1:].lstrip(WHITESPACE)
        length = 0
        while length < len(name) and name[length] in _IDENTIFIER:
            length += 1
        if length == 0 and name:
            return self._give_up() if name[0] not in _IDENTIFIER_START else None
        if length < len(name):
            if name[length] != "(" or name[0] not in _IDENTIFIER_START:
                return self._give_up()
            self._at = _At.LIST  # `[name(`: a call list; scan it from the `[`
            self._depth = 0
            for c in text:
                self._scan(c)
        return None

    def _give_up(self) -> None:
        held, self._held = "".join(self._held), []
        self._at = _At.CONTENT
        self._text(held)

    def _scan(self, ch: str) -> None:
        """Track strings and nesting until the list's own `]`."""
        if self._quote:
            if self._escape:
                self._escape = False
            elif ch == "\\":
                self._escape = True
            elif ch == self._quote:
                self._quote = ""
            return
        if ch in "'\"":
            self._quote = ch
        elif ch in "([{":
            self._depth += 1
        elif ch in ")]}":
            self._depth -= 1
            if self._depth == 0:
                self._close_list()

    def _close_list(self) -> None:
        text = "".join(self._held).lstrip(WHITESPACE)
        if text.startswith(START_TAG):
            text = text[len(START_TAG) :]
        calls = parse_call_list(text.strip(WHITESPACE))
        if calls is None:
            return self._give_up()
        self._held = []
        for name, arguments in calls:
            self._begin_call(NamedArguments(name, [arguments]))
            self._keep_call()
        self._at = _At.AFTER
        return None

    def _push_after(self, ch: str) -> None:
        self._after += ch
        rest = self._after.lstrip(WHITESPACE)
        if not rest or (END_TAG.startswith(rest) and rest != END_TAG):
            return  # whitespace, or maybe the closing tag: dropped with the list
        self._after = ""
        if rest != END_TAG:  # text after the list is content
            self._at = _At.CONTENT
            self._text(rest)

    def _end(self) -> None:
        if self._at in (_At.START, _At.LIST):
            self._give_up()


def parse_call_list(text: str) -> list[tuple[str, str]] | None:
    """`[f(a=1), g(b="x")]` -> [(name, JSON arguments)], or None when it is not a call list."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        return None
    calls = []
    for node in tree.body.elts:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = _dotted_name(node.func)
        if name is None:
            return None
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:  # **kwargs
                return None
            try:
                arguments[keyword.arg] = _literal(keyword.value)
            except (ValueError, RecursionError):
                return None
        try:
            calls.append((name, json.dumps(arguments, ensure_ascii=False, allow_nan=False)))
        except (ValueError, RecursionError):
            return None
    return calls


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted_name(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            return node.value
        raise ValueError("not a JSON value")
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise ValueError("** in a dict")
            name = _literal(key)
            if not isinstance(name, str):
                raise ValueError("JSON keys are strings")
            out[name] = _literal(value)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("sign of a non-number")
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not a literal")
