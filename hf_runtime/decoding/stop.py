"""Stop-string matching on streamed text, with holdback.

A stop string can arrive split over several tokens, so text that could be the start of a stop
string is held back until it either completes one (and is dropped with everything after it) or
can no longer become one (and is released). Nothing of a stop string is ever streamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StopResult:
    """What `StopStringMatcher.feed` released: `text` is safe to stream; `stop` is the stop
    string that matched (the sequence is finished) or None."""

    text: str
    stop: str | None = None


class StopStringMatcher:
    """Per-sequence matcher; not thread-safe (one sequence is fed from one thread)."""

    def __init__(self, stops: Sequence[str]) -> None:
        # Empty strings would match everywhere; the protocol layer should reject them, and here
        # they are ignored rather than ending every sequence at once.
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._held = ""

    @property
    def held(self) -> str:
        """Text not yet released because it may be the start of a stop string."""
        return self._held

    def feed(self, text: str, *, allow_stop: bool = True) -> StopResult:
        """Add newly decoded text. With `allow_stop` False (before `min_tokens` is reached),
        stop strings are not looked for and the held text is released."""
        pending = self._held + text
        if not self._stops or not allow_stop:
            self._held = ""
            return StopResult(pending)
        match_at, matched = self._earliest_match(pending)
        if matched is not None:
            self._held = ""
            return StopResult(pending[:match_at], matched)
        keep = self._longest_partial_suffix(pending)
        self._held = pending[len(pending) - keep :] if keep else ""
        return StopResult(pending[: len(pending) - keep])

    def flush(self) -> str:
        """Release the held text (the sequence ended for another reason)."""
        held, self._held = self._held, ""
        return held

    def _earliest_match(self, text: str) -> tuple[int, str | None]:
        best_at, best = len(text) + 1, None
        for stop in self._stops:
            at = text.find(stop)
            # Earliest start wins; at equal starts the longer stop string (it is removed whole).
            if at != -1 and (at < best_at or (at == best_at and best and len(stop) > len(best))):
                best_at, best = at, stop
        return best_at, best

    def _longest_partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[len(text) - length :]):
                    longest = length
                    break
        return longest
