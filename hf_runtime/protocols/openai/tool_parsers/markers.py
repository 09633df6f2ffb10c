"""Spotting a marker (`<tool_call>`, `[TOOL_CALLS]`) in text that arrives a character at a time."""

from __future__ import annotations


class MarkerMatcher:
    """Feeds characters; says when a marker completes and which held characters turned out
    not to be part of one. A partial match is held back, so a stream never shows half a marker
    as content."""

    def __init__(self, *markers: str) -> None:
        self.markers = markers
        self.pending = ""

    def push(self, ch: str) -> tuple[str, str | None]:
        """(text released as not a marker, the marker completed by `ch` or None)."""
        candidate = self.pending + ch
        for marker in self.markers:
            if candidate == marker:
                self.pending = ""
                return "", marker
        # Keep the longest suffix that still begins a marker; release what precedes it.
        for start in range(len(candidate)):
            tail = candidate[start:]
            if any(marker.startswith(tail) for marker in self.markers):
                self.pending = tail
                return candidate[:start], None
        self.pending = ""
        return candidate, None

    def release(self) -> str:
        """The text ended: whatever was held is not a marker."""
        held, self.pending = self.pending, ""
        return held
