"""What every tool-call format shares: the stream of deltas, the calls, content handling.

An `Extractor` reads one sequence's text as it arrives (`feed`, then `finish`) and returns
content and tool-call deltas. Whole answers go through the same code (`extract`: all the text in
one `feed`), so a stream's deltas assemble to exactly the whole-answer result however the text
was split. Rules every format follows:
  - text that is not a call is content; a partial marker is held back, never sent as content;
  - a call is announced (id and name) once its name is known and its arguments have begun, then
    its arguments follow as fragments of the model's own text (no re-serialisation);
  - a call the text cuts off (max_tokens) stays a call with the arguments it got, as OpenAI's
    own API does; `finish_reason` says "length";
  - a malformed call is content, never an error. A stream that had already announced it keeps
    that broken entry, and its text follows as content (the content still equals the
    whole-answer content);
  - whitespace around calls is dropped; a text with no call is returned unchanged.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from hf_runtime.protocols.openai.tool_parsers.json_scan import WHITESPACE


def new_call_id() -> str:
    """OpenAI's shape: `call_` and 24 characters."""
    return f"call_{uuid.uuid4().hex[:24]}"


_ALPHANUMERIC = string.ascii_letters + string.digits


def new_mistral_call_id() -> str:
    """Mistral's chat templates accept only 9 alphanumeric characters (as vLLM generates)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class CallDelta:
    """Part of call `index`: its id and name come with its first delta only."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass
class Delta:
    content: str = ""
    calls: list[CallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.calls)

    def merge(self, later: Delta) -> Delta:
        """This delta followed by `later`, one entry per call."""
        calls = {part.index: part for part in self.calls}
        for part in later.calls:
            earlier = calls.get(part.index)
            if earlier is None:
                calls[part.index] = part
            else:
                calls[part.index] = CallDelta(
                    part.index, earlier.arguments + part.arguments, earlier.id, earlier.name
                )
        return Delta(self.content + later.content, [calls[i] for i in sorted(calls)])


@dataclass(frozen=True)
class Extracted:
    """A whole answer: content outside the calls ("" when none) and the calls, in order."""

    content: str
    calls: list[ToolCall]


class CallSource(Protocol):
    """What a format knows about the call it is reading."""

    @property
    def name(self) -> str | None: ...

    @property
    def arguments_parts(self) -> list[str]:
        """The arguments' text so far, in the pieces it arrived in (only ever appended to)."""

    @property
    def ready(self) -> bool: ...


@dataclass
class NamedArguments:
    """A call read as a name, then its arguments' text (Mistral v11, a named tool_choice, a
    pythonic call known whole at once)."""

    name: str | None = None
    arguments_parts: list[str] = field(default_factory=list)

    @property
    def arguments_text(self) -> str:
        return "".join(self.arguments_parts)

    @property
    def ready(self) -> bool:
        return self.name is not None and bool(self.arguments_parts)

    def add(self, text: str) -> None:
        if text:
            self.arguments_parts.append(text)


@dataclass
class _Call:
    source: CallSource
    index: int | None = None  # set when announced
    sent: int = 0  # pieces of its arguments sent
    broken: bool = False  # announced, then found malformed: nothing more is sent


class Extractor:
    """Base of every format: content, whitespace and call bookkeeping; `_push` and `_end`
    are the format's grammar (one character at a time; the text ended)."""

    new_id = staticmethod(new_call_id)

    def __init__(self) -> None:
        self._content: list[str] = []
        self._held_ws = ""
        self._calls: list[_Call] = []
        self._open: _Call | None = None
        self._announced = 0
        self._kept_any = False

    # ------------------------------------------------------------------ public

    def feed(self, text: str) -> Delta:
        i, size = 0, len(text)
        while i < size:
            taken = self._bulk(text, i)
            if taken:
                i += taken
            else:
                self._push(text[i])
                i += 1
        return self._flush()

    def finish(self) -> Delta:
        self._end()
        if self._held_ws and not self._kept_any:
            self._content.append(self._held_ws)
        self._held_ws = ""
        return self._flush()

    @property
    def called(self) -> bool:
        """Whether any call was announced."""
        return self._announced > 0

    # ------------------------------------------------------------------ for formats

    def _push(self, ch: str) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def _bulk(self, text: str, start: int) -> int:
        """How many characters from `start` the format took at once (plain content, where
        reading one at a time would only cost time); 0: read the next one with `_push`."""
        return 0

    def _content_until(self, text: str, start: int, stop: str) -> int:
        """`_bulk` for content scanned for markers that begin with the character `stop`."""
        end = text.find(stop, start)
        if end == -1:
            end = len(text)
        if end > start:
            self._text(text[start:end])
        return end - start

    def _text(self, text: str) -> None:
        """Content. A whitespace run is held until what follows shows whether it is content
        (more text) or the gap before a call or at the end (dropped)."""
        body = text.rstrip(WHITESPACE)
        if body:
            self._content.append(self._held_ws + body)
            self._held_ws = text[len(body) :]
        else:
            self._held_ws += text

    def _begin_call(self, source: CallSource) -> str:
        """A call starts; returns the whitespace before it (part of its raw text, restored
        as content if the call fails)."""
        held, self._held_ws = self._held_ws, ""
        self._open = _Call(source)
        self._calls.append(self._open)
        return held

    def _replace_source(self, source: CallSource) -> None:
        assert self._open is not None
        self._open.source = source

    def _keep_call(self) -> None:
        """The open call is complete (or cut off by the end of the text, but announced)."""
        self._open = None
        self._kept_any = True

    def _fail_call(self, raw: str) -> None:
        """The open call is malformed: `raw` (all of its text so far) becomes content."""
        call = self._open
        self._open = None
        if call is not None:
            if call.index is None:
                self._calls.remove(call)
            else:
                call.broken = True
        self._text(raw)

    def _open_ready(self) -> bool:
        return self._open is not None and self._open.source.ready

    # ------------------------------------------------------------------ flushing

    def _flush(self) -> Delta:
        delta = Delta(content="".join(self._content))
        self._content = []
        for call in self._calls:
            if call.broken:
                continue
            source = call.source
            if call.index is None:
                if not source.ready or source.name is None:
                    break  # calls are announced in order
                call.index = self._announced
                self._announced += 1
                parts = source.arguments_parts
                call.sent = len(parts)
                delta.calls.append(
                    CallDelta(call.index, "".join(parts), self.new_id(), source.name)
                )
                continue
            parts = source.arguments_parts
            if len(parts) > call.sent:
                delta.calls.append(CallDelta(call.index, "".join(parts[call.sent :])))
                call.sent = len(parts)
        # Calls that can change no more are dropped from the scan.
        if self._open is None:
            self._calls = []
        elif len(self._calls) > 1:
            self._calls = [self._open]
        return delta


def extract(extractor: Extractor, text: str) -> Extracted:
    """A whole answer through `extractor` (a fresh one)."""
    return assemble([extractor.feed(text), extractor.finish()])


def assemble(deltas: list[Delta]) -> Extracted:
    """Deltas put back together (what a client does with a stream)."""
    content: list[str] = []
    calls: dict[int, list[str]] = {}
    heads: dict[int, tuple[str, str]] = {}
    for delta in deltas:
        content.append(delta.content)
        for part in delta.calls:
            if part.name is not None and part.id is not None:
                heads[part.index] = (part.id, part.name)
            calls.setdefault(part.index, []).append(part.arguments)
    return Extracted(
        "".join(content),
        [ToolCall(*heads[i], "".join(calls[i])) for i in sorted(calls) if i in heads],
    )
