"""Waiting for a server's state before asserting it. CI runs the suite on a loaded 2-core
machine: a fixed sleep there is sometimes too short, so tests poll for the state they need,
with deadlines far past anything a healthy server takes (waits, never timing assertions)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

SETTLE_S = 60.0  # the deadline of every wait here


def wait_until(condition: Callable[[], bool], what: str, seconds: float = SETTLE_S) -> None:
    """Poll `condition` every 50 ms; fail, saying `what` never happened, after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.05)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with these labels on the server's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not on /metrics")
