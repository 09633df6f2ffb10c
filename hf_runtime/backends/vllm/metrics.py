"""vLLM's Prometheus metrics (`vllm:*`) on the service's /metrics.

vLLM's engine front end (which lives in this process: the engine core only ships it its
statistics) creates ordinary prometheus_client metrics in the default registry. Where they
show up depends on prometheus_client's mode, fixed when it is first imported:
  - multiprocess mode (PROMETHEUS_MULTIPROC_DIR set, as in every BentoML worker): each value is
    written to that directory, and BentoML's /metrics, which collects the whole directory,
    already exports them. Appending them again would duplicate every series.
  - single-process mode: they exist only in the default registry, which BentoML's multiprocess
    /metrics never reads, so they must be rendered and appended.
The runtime's /metrics text (`hf_runtime.observability.metrics.metrics_text`, prefixes from
`hf_runtime.runtime.server.EXPORTED_PREFIXES`) already does this for `vllm:*`; this module is
the vLLM-only view of the same rule. It imports neither vLLM nor, before it is called,
prometheus_client.
"""

from __future__ import annotations

from hf_runtime.observability.metrics import default_registry_text

VLLM_METRIC_PREFIX = "vllm:"


def vllm_metrics_text() -> str:
    """Prometheus text of the vLLM metrics to append to /metrics ("" when there are none, or
    when the multiprocess collector already exports them: see the module docstring)."""
    return default_registry_text((VLLM_METRIC_PREFIX,))
