"""Reading the process's prometheus_client values in tests (works in multiprocess mode too:
each metric reads its own process's value file)."""

from __future__ import annotations

from hf_runtime.observability.metrics import event_metrics


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0.0 when absent)."""
    from prometheus_client import REGISTRY

    event_metrics()  # create the families, so an untouched series reads as 0
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def generation_samples(model: str, backend: str) -> dict[str, float]:
    """The generation metrics of one (model, backend) pair, by short name."""
    labels = {"model": model, "backend": backend}
    prefix = "hf_runtime_"
    return {
        "ttft": sample(prefix + "time_to_first_token_seconds_count", **labels),
        "itl": sample(prefix + "inter_token_latency_seconds_count", **labels),
        "prompt": sample(prefix + "prompt_tokens_total", **labels),
        "generated": sample(prefix + "generation_tokens_total", **labels),
        "queue": sample(prefix + "queue_time_seconds_count", **labels),
    }


def increase(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}
