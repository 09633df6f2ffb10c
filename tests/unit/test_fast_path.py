"""The BentoML fast path (hf_runtime.fast_path): decided from our config and BentoML's config
sources, and applied by service.py to BentoML's real app (built in a subprocess, as a worker
builds it: `service.to_asgi()`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_runtime import fast_path
from hf_runtime.config import REPO_ROOT, ServerConfig

PROTOCOL_URLS = [
    "http://127.0.0.1:3000/v1/models/minilm:predict",
    "http://localhost/v2/models/m/infer",
    "https://h:1/v1/chat/completions",
    "http://h/openai/v1/embeddings",
    "http://h/rerank",
    "http://h/v2",
]
OTHER_URLS = ["http://h/metrics", "http://h/livez", "http://h/readyz", "http://h/docs.json",
              "http://h/"]  # fmt: skip
# Not protocol routes, and not BentoML's either: unknown paths, untraced too (issue 23: a flood
# of distinct unknown paths grew the worker through OpenTelemetry's middleware).
NEAR_MISS_URLS = ["http://h/v10/x", "http://h/rerankx", "http://h/metricsx", "http://h/a/b"]


def test_on_by_default_and_tracing_skipped_when_bentoml_tracing_is_not_configured() -> None:
    decision = fast_path.decide(ServerConfig(), env={})
    assert decision.direct_dispatch and decision.untraced_routes
    from opentelemetry.util.http import ExcludeList

    excluded = ExcludeList(decision.service_config()["tracing"]["excluded_urls"])
    assert all(excluded.url_disabled(url) for url in PROTOCOL_URLS)
    assert not any(excluded.url_disabled(url) for url in OTHER_URLS)
    protocol_only = ExcludeList(list(fast_path.PROTOCOL_URL_PATTERNS))
    assert not any(protocol_only.url_disabled(url) for url in NEAR_MISS_URLS)
    assert all(excluded.url_disabled(url) for url in NEAR_MISS_URLS)
    assert "fast path on" in decision.describe()


def test_switched_off_by_the_server_setting() -> None:
    decision = fast_path.decide(ServerConfig(bentoml_fast_path=False), env={})
    assert not decision.direct_dispatch and not decision.untraced_routes
    assert decision.service_config() == {}
    assert "fast path off" in decision.describe()


@pytest.mark.parametrize(
    "env",
    [
        {"BENTOML_CONFIG_OPTIONS": "tracing.exporter_type=otlp tracing.sample_rate=1.0"},
        {"BENTOML_CONFIG_OPTIONS": "services.hf-runtime.tracing.sample_rate=0.5"},
        {"BENTOML_CONFIG_OVERRIDES": json.dumps({"tracing": {"exporter_type": "zipkin"}})},
        {"BENTOML_CONFIG_OVERRIDES": json.dumps({"services.hf-runtime.tracing.sample_rate": 1})},
        {"BENTOML_CONFIG_OVERRIDES": "{not json"},
    ],
)
def test_configured_bentoml_tracing_keeps_its_spans(env: dict[str, str]) -> None:
    decision = fast_path.decide(ServerConfig(), env=env)
    assert decision.direct_dispatch and not decision.untraced_routes
    assert decision.service_config() == {}
    assert "keep BentoML's OpenTelemetry spans" in decision.describe()


def test_tracing_in_the_bentoml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bentoml.yaml"
    config.write_text("version: 2\nservices:\n  hf-runtime:\n    tracing:\n      sample_rate: 1\n")
    assert fast_path.tracing_configured({"BENTOML_CONFIG": str(config)})
    config.write_text("version: 2\ntracing:\n  exporter_type: ~\nlogging: {}\n")
    assert fast_path.tracing_configured({"BENTOML_CONFIG": str(config)}) is None
    assert fast_path.tracing_configured({"BENTOML_CONFIG": str(tmp_path / "missing.yaml")})


SCRIPT = """
import json, os
from starlette.testclient import TestClient
import service
from hf_runtime.protocols.gateway import Gateway

app = service.HFRuntime.to_asgi(is_main=True)
names = [m.cls.__name__ for m in app.user_middleware]
otel = next(m for m in app.user_middleware if m.cls.__name__ == "OpenTelemetryMiddleware")
excluded = otel.kwargs["excluded_urls"]
with TestClient(app) as client:
    missing = client.post("/v1/models/nope:predict", json={"instances": ["a"]})
    livez = client.get("/livez")
    metrics = client.get("/metrics")
    layer, gateway = app.middleware_stack, None
    while layer is not None and gateway is None:
        gateway = layer if isinstance(layer, Gateway) else None
        layer = getattr(layer, "app", None)
print(json.dumps({
    "middlewares": names,
    "protocol_untraced": excluded.url_disabled("http://127.0.0.1:3000/v1/models/m:predict"),
    "metrics_untraced": excluded.url_disabled("http://127.0.0.1:3000/metrics"),
    "direct": gateway is not None and gateway.direct is not None,
    "missing": [missing.status_code, missing.json(), missing.headers.get("x-request-id")],
    "livez": livez.status_code,
    "metrics": metrics.status_code,
    "our_metric": 'hf_runtime_request_duration_seconds_count{model="",protocol="v1",'
                  'status_class="4xx"}' in metrics.text,
    "bentoml_metric": 'endpoint="/v1/models/{name}:predict"' in metrics.text,
    "raw_path_label": 'endpoint="/v1/models/nope:predict"' in metrics.text,
}))
"""


def _built_service(tmp_path: Path, **env: str) -> dict[str, object]:
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_RUNTIME_", "BENTOML_CONFIG"))
    }
    child_env.update(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        HF_RUNTIME_MODEL_DIR=str(tmp_path / "no-model"),  # nothing loads; routes still answer
        HF_RUNTIME_GRPC_PORT="0",
        BENTOML_DO_NOT_TRACK="True",
        **env,
    )
    (tmp_path / "prometheus").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=child_env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("env", "untraced", "direct"),
    [
        ({}, True, True),
        ({"HF_RUNTIME_BENTOML_FAST_PATH": "false"}, False, False),
        ({"BENTOML_CONFIG_OPTIONS": "tracing.sample_rate=1.0"}, False, True),
    ],
    ids=["default", "switched-off", "bentoml-tracing-configured"],
)
def test_service_applies_the_fast_path_to_bentomls_app(
    tmp_path: Path, env: dict[str, str], untraced: bool, direct: bool
) -> None:
    built = _built_service(tmp_path, **env)
    names = built["middlewares"]
    assert isinstance(names, list)
    # Why the fast path cannot step around BentoML's middlewares: ours sits inside them.
    assert names.index("OpenTelemetryMiddleware") < names.index("Gateway")
    assert names.index("RunnerTrafficMetricsMiddleware") < names.index("Gateway")
    assert built["protocol_untraced"] is untraced and built["metrics_untraced"] is False
    assert built["direct"] is direct
    status, body, request_id = built["missing"]  # type: ignore[misc]
    assert status == 404 and body == {"error": "Model with name nope does not exist."}
    assert request_id
    assert built["livez"] == 200 and built["metrics"] == 200
    # Our request metrics and BentoML's traffic metrics both still count protocol requests.
    assert built["our_metric"] and built["bentoml_metric"]
    # ... labelled by route template, never by the client's raw path (metric-label cardinality).
    assert not built["raw_path_label"]
