"""vLLM's Prometheus metrics (`vllm:*`) on the service's /metrics.

vLLM's engine front end (which lives in this process: the engine core only ships it its
statistics) creates ordinary prometheus_client metrics in the default registry. Where they
show up depends on prometheus_client's mode, fixed when it is first imported:
  - multiprocess mode (PROMETHEUS_MULTIPROC_DIR set, as in every BentoML worker): each value is
    written to that directory, and BentoML's /metrics, which collects the whole directory,
    already exports them. Appending them again would duplicate every series.
  - single-process mode: they exist only in the default registry, which BentoML's multiprocess
    /metrics never reads; `vllm_metrics_text` renders them to append.
Import this module freely: it imports neither vLLM nor, before it is called, prometheus_client.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

VLLM_METRIC_PREFIX = "vllm:"


def prometheus_multiprocess_mode() -> bool:
    """True when prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR files."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


class _VLLMFamilies:
    """A collector that yields the default registry's vLLM metric families only."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client import REGISTRY

        for family in REGISTRY.collect():
            if family.name.startswith(VLLM_METRIC_PREFIX):
                yield family


def vllm_metrics_text() -> str:
    """Prometheus text of the vLLM metrics to append to /metrics ("" when there are none, or
    when the multiprocess collector already exports them: see the module docstring)."""
    if "prometheus_client" not in sys.modules:
        return ""  # nothing has created any metric yet
    if prometheus_multiprocess_mode():
        return ""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_VLLMFamilies())  # type: ignore[arg-type]  # duck-typed collector
    return generate_latest(registry).decode()
