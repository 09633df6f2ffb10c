"""Markdown table cells, shared by the benchmark's reports."""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table cell: "-" when missing or NaN, floats to `digits` places."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def row(*cells: Any) -> str:
    return "| " + " | ".join(fmt(c) for c in cells) + " |"


def one_line(error: str, limit: int = 160) -> str:
    """An error's first line, safe inside a Markdown table cell."""
    first = next((line.strip() for line in error.splitlines() if line.strip()), "")
    return first.replace("|", "/")[:limit]
