"""hf-runtime's Prometheus metrics, built with prometheus_client.

Two kinds:
  - Event metrics (histograms, counters) are prometheus_client objects created once per process
    in the default registry. In a BentoML worker prometheus_client runs in multiprocess mode
    (PROMETHEUS_MULTIPROC_DIR is set before the worker starts), so their values land in that
    directory and BentoML's /metrics exports them with its own series; in a plain process
    `render_default_registry` renders them.
  - State metrics (requests running/waiting, batcher counters) are read from the models at
    scrape time by `ModelStatsCollector`, so they are exact and never go stale.
Importing this module imports prometheus_client only when a metric is first used.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

PREFIX = "hf_runtime_"
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
TOKEN_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
)  # fmt: skip
MODEL_LABELS = ("model", "backend")


@dataclass(frozen=True)
class EventMetrics:
    request_duration: Any
    queue_time: Any
    time_to_first_token: Any
    inter_token_latency: Any
    prompt_tokens: Any
    generation_tokens: Any
    load_failures: Any


@functools.cache
def event_metrics() -> EventMetrics:
    """The process's event metrics (created on first use, once)."""
    from prometheus_client import Counter, Histogram

    return EventMetrics(
        request_duration=Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request arrival to the last byte of its response.",
            ["model", "protocol", "status_class"],
            buckets=LATENCY_BUCKETS,
        ),
        queue_time=Histogram(
            PREFIX + "queue_time_seconds",
            "Time a request's work waited before the model started on it.",
            MODEL_LABELS,
            buckets=LATENCY_BUCKETS,
        ),
        time_to_first_token=Histogram(
            PREFIX + "time_to_first_token_seconds",
            "Time from a generation request's arrival to its first generated token.",
            MODEL_LABELS,
            buckets=LATENCY_BUCKETS,
        ),
        inter_token_latency=Histogram(
            PREFIX + "inter_token_latency_seconds",
            "Time between consecutive generated tokens of one sequence.",
            MODEL_LABELS,
            buckets=TOKEN_LATENCY_BUCKETS,
        ),
        prompt_tokens=Counter(PREFIX + "prompt_tokens", "Prompt tokens processed.", MODEL_LABELS),
        generation_tokens=Counter(PREFIX + "generation_tokens", "Tokens generated.", MODEL_LABELS),
        load_failures=Counter(
            PREFIX + "model_load_failures",
            "Model loads that failed, by model and reason (the error logged and reported).",
            ["model", "reason"],
        ),
    )


def observe_request(model: str, protocol: str, status: int, seconds: float) -> None:
    _child("request_duration", model, protocol, f"{status // 100}xx").observe(seconds)


# Labelled series already looked up, by (metric, *label values): `labels()` checks and joins its
# arguments under a lock on every call, and these are observed on every request. Bounded:
# model names come and go with the model repository.
_CHILDREN: dict[tuple[str, ...], Any] = {}
MAX_CACHED_CHILDREN = 4096


def _child(metric: str, *label_values: str) -> Any:
    """The series of the event metric `metric` (an EventMetrics field) with these label
    values, in the metric's label order."""
    key = (metric, *label_values)
    child = _CHILDREN.get(key)
    if child is None:
        if len(_CHILDREN) >= MAX_CACHED_CHILDREN:
            _CHILDREN.clear()
        child = _CHILDREN[key] = getattr(event_metrics(), metric).labels(*label_values)
    return child


MAX_REASON_LABEL = 200  # characters of a load failure's reason kept in its label


def count_load_failure(model: str, reason: str) -> None:
    """One failed load of `model`; `reason` is the one its state reports (cut to 200 chars)."""
    event_metrics().load_failures.labels(model=model, reason=reason[:MAX_REASON_LABEL]).inc()


def observe_queue_time(model: str, backend: str, seconds: float) -> None:
    _child("queue_time", model, backend).observe(seconds)


class TokenTimer:
    """Per-sequence generation timings: TTFT, inter-token latency, token counts.

    One instance per sequence (never shared); `started` is when the request arrived, on the
    time.perf_counter() clock. The labelled series are looked up once, here, rather than on
    every delta.
    """

    def __init__(self, model: str, backend: str, started: float) -> None:
        metrics = event_metrics()
        labels = {"model": model, "backend": backend}
        self._prompt_tokens = metrics.prompt_tokens.labels(**labels)
        self._generation_tokens = metrics.generation_tokens.labels(**labels)
        self._time_to_first_token = metrics.time_to_first_token.labels(**labels)
        self._inter_token_latency = metrics.inter_token_latency.labels(**labels)
        self._last: float | None = None
        self._started = started

    def prompt(self, tokens: int) -> None:
        if tokens:
            self._prompt_tokens.inc(tokens)

    def tokens(self, count: int, now: float) -> None:
        """`count` tokens arrived at `now` (deltas without tokens are ignored)."""
        if count <= 0:
            return
        self._generation_tokens.inc(count)
        if self._last is None:
            self._time_to_first_token.observe(now - self._started)
        else:
            # Tokens that arrive together share the gap since the previous delivery.
            gap = (now - self._last) / count
            for _ in range(count):
                self._inter_token_latency.observe(gap)
        self._last = now


# ------------------------------------------------------------------ scrape-time state


@dataclass(frozen=True)
class StateFamily:
    """A metric read from model stats: `hf_runtime_<name>` from the stats key `key`."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    key: str


_STATE = [  # (name, kind, help, stats key)
    ("requests_running", "gauge", "Requests (sequences) the model is working on.", "running"),
    ("requests_waiting", "gauge", "Requests (sequences) queued for the model.", "waiting"),
    ("batches", "counter", "Encoder forward passes run.", "batches"),
    ("items", "counter", "Texts run through encoder forward passes.", "items"),
    ("largest_batch", "gauge", "Largest encoder batch so far.", "largest_batch"),
    ("failed_batches", "counter", "Encoder forward passes that failed.", "failed_batches"),
    (
        "rejected_requests",
        "counter",
        "Refused with 429 (encoders: requests; generation: sequences).",
        "rejected_requests",
    ),
    ("padded_tokens", "counter", "Padded tokens in encoder forward passes.", "padded_tokens"),
    ("real_tokens", "counter", "Real (non-padding) tokens in encoder passes.", "real_tokens"),
    ("decode_steps", "counter", "Batched decoding steps run.", "decode_steps"),
    ("decoded_sequences", "counter", "Sum of decoding step sizes.", "decoded_sequences"),
    ("largest_decode_batch", "gauge", "Largest decoding step so far.", "largest_decode_batch"),
    (
        "prefix_cache_queries",
        "counter",
        "Prompt tokens looked up in the prefix cache (vLLM: vllm:prefix_cache_queries).",
        "prefix_cache_queries",
    ),
    (
        "prefix_cache_hits",
        "counter",
        "Prompt tokens whose keys and values came from the prefix cache.",
        "prefix_cache_hits",
    ),
    ("prefix_cache_blocks", "gauge", "Blocks in the prefix cache.", "prefix_cache_blocks"),
    ("prefix_cache_bytes", "gauge", "Bytes of the prefix cache.", "prefix_cache_bytes"),
    (
        "prefix_cache_evicted_blocks",
        "counter",
        "Prefix cache blocks evicted (least recently used first) to stay within max_bytes.",
        "prefix_cache_evicted_blocks",
    ),
]
STATE_FAMILIES = tuple(StateFamily(*row) for row in _STATE)
# A ratio of two counters above, exported beside them: hits / queries since the start.
HIT_RATE = StateFamily(
    "prefix_cache_hit_rate",
    "gauge",
    "Share of prompt tokens served from the prefix cache since the start (hits / queries; "
    "rate(hits) / rate(queries) gives it over a window).",
    "prefix_cache_queries",
)


StatsSource = Callable[[], Iterable[tuple[str, str, dict[str, int]]]]


class ModelStatsCollector:
    """A prometheus_client collector over (model, backend, stats) triples read at scrape time.

    Stats keys not listed in STATE_FAMILIES are exported as gauges under their own name, so a
    new counter in a backend shows up without touching this module.
    """

    def __init__(self, source: StatsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rows = list(self._source())
        known = {family.key for family in STATE_FAMILIES}
        extra = sorted({key for _, _, stats in rows for key in stats} - known)
        families = [
            *STATE_FAMILIES,
            *(StateFamily(k, "gauge", f"Backend statistic {k}.", k) for k in extra),
        ]
        for family in families:
            present = [(m, b, s[family.key]) for m, b, s in rows if family.key in s]
            if not present:
                continue
            name = PREFIX + family.name
            cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = cls(name, family.help, labels=list(MODEL_LABELS))
            for model, backend, value in present:
                metric.add_metric([model, backend], float(value))
            yield metric
        rates = [(m, b, s) for m, b, s in rows if HIT_RATE.key in s and "prefix_cache_hits" in s]
        if rates:
            gauge = GaugeMetricFamily(
                PREFIX + HIT_RATE.name, HIT_RATE.help, labels=list(MODEL_LABELS)
            )
            for model, backend, stats in rates:
                queries = stats[HIT_RATE.key]
                gauge.add_metric(
                    [model, backend], stats["prefix_cache_hits"] / queries if queries else 0.0
                )
            yield gauge


def prometheus_multiprocess_mode() -> bool:
    """True when prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR files."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


class _PrefixedFamilies:
    """The default registry's families whose names start with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self._prefixes = prefixes

    def collect(self) -> Iterator[Any]:
        from prometheus_client import REGISTRY

        for family in REGISTRY.collect():
            if family.name.startswith(self._prefixes):
                yield family


def render(collectors: Iterable[Any]) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def _default_registry_unexported() -> bool:
    """True when the default registry's families reach /metrics only if we render them: in
    multiprocess mode BentoML's own collector already exports them, and appending them again
    would duplicate every series."""
    return "prometheus_client" in sys.modules and not prometheus_multiprocess_mode()


def default_registry_text(prefixes: tuple[str, ...]) -> str:
    """The default registry's families with these prefixes, rendered for /metrics; "" when
    they are exported already (multiprocess mode) or nothing has created a metric yet."""
    if not _default_registry_unexported():
        return ""
    return render([_PrefixedFamilies(prefixes)])


def metrics_text(stats_source: StatsSource, default_registry_prefixes: tuple[str, ...]) -> str:
    """What to append to BentoML's /metrics: model state, plus the default registry's families
    with these prefixes unless BentoML already exports them (see default_registry_text)."""
    collectors: list[Any] = [ModelStatsCollector(stats_source)]
    if _default_registry_unexported():
        collectors.append(_PrefixedFamilies(default_registry_prefixes))
    return render(collectors)
