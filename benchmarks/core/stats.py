"""Small arithmetic the phases share."""

from __future__ import annotations


def per_request_ms(seconds: float | None, requests: int) -> float | None:
    """CPU `seconds` spread over `requests` (or tokens), in ms; None when not measured."""
    return None if seconds is None else round(1000 * seconds / max(1, requests), 3)
