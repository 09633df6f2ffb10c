"""The BentoML fast path: BentoML's per-request work kept off the protocol routes, where that
loses nothing anyone configured. Decided once, here; service.py applies it and logs it.

BentoML runs every HTTP request through its own ASGI middlewares (traffic metrics,
OpenTelemetry, access log, timeout) before anything of ours: `add_asgi_middleware` puts our
gateway INSIDE them (BentoML lists its own first; in starlette the first listed is outermost),
so the gateway cannot step around them. Measured in-process (benchmarks/asgi_costs.py), the
OpenTelemetry middleware costs most of BentoML's per-request CPU even with tracing off: it
builds a span, attributes and wrapped send/receive for every request and message. Two things
are in our hands:

  1. tracing: BentoML's documented `tracing.excluded_urls` (a service config key) names the
     protocol routes and every path BentoML does not serve itself, so its OpenTelemetry
     middleware passes them straight through. Only while
     BentoML tracing is not configured (no `tracing` key in BENTOML_CONFIG, BENTOML_CONFIG_OPTIONS
     or BENTOML_CONFIG_OVERRIDES): with an exporter, every request keeps its span.
  2. dispatch: the gateway hands protocol requests straight to the protocol app that serves
     them, skipping BentoML's router and request-context middleware, which no protocol app
     reads (hf_runtime.protocols.direct_routes); never past BentoML's CORS middleware.
  3. timeout: BentoML's request timeout runs without a task and a lingering timer per request
     (hf_runtime.bentoml_timeout; same timeout, same 504).

Kept either way: our request ids and request-duration metrics, BentoML's traffic metrics,
access log and timeout, /metrics and the lifespan. `server.bentoml_fast_path: false` turns all
off (everything then goes through BentoML exactly as before).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hf_runtime.config import ServerConfig
from hf_runtime.routes import protocol_url_patterns, unknown_url_pattern

# Full URLs (scheme://host/path, no query) as OpenTelemetry's ExcludeList searches them: every
# route the gateway counts as a protocol route (routes.surface_for), and the V2 health probes
# beside them; derived from the route table.
PROTOCOL_URL_PATTERNS = protocol_url_patterns()
# Every other path but BentoML's own routes: with no exporter, a span of an unknown path goes
# nowhere, yet OpenTelemetry's middleware kept ~28 KB per distinct path (a flood of random URLs
# grew the worker without bound).
UNKNOWN_URL_PATTERN = unknown_url_pattern()
CONFIG_FILE_VARIABLE = "BENTOML_CONFIG"
CONFIG_OPTIONS_VARIABLE = "BENTOML_CONFIG_OPTIONS"
CONFIG_OVERRIDES_VARIABLE = "BENTOML_CONFIG_OVERRIDES"


@dataclass(frozen=True)
class FastPath:
    """What the fast path does in this process, and why."""

    direct_dispatch: bool
    untraced_routes: bool
    reason: str

    def service_config(self) -> dict[str, Any]:
        """Keys for `@bentoml.service(...)`: the tracing exclusion, when it applies."""
        if not self.untraced_routes:
            return {}
        return {"tracing": {"excluded_urls": [*PROTOCOL_URL_PATTERNS, UNKNOWN_URL_PATTERN]}}

    def describe(self) -> str:
        """The startup log line."""
        if not (self.direct_dispatch or self.untraced_routes):
            return f"BentoML fast path off ({self.reason}): requests take BentoML's full stack"
        parts = ["protocol requests dispatched straight to their app", "inline request timeout"]
        if self.untraced_routes:
            parts.append("skip BentoML's OpenTelemetry middleware")
        else:
            parts.append(f"keep BentoML's OpenTelemetry spans ({self.reason})")
        return "BentoML fast path on: " + "; ".join(parts) + " (server.bentoml_fast_path)"


def decide(server: ServerConfig, env: Mapping[str, str] | None = None) -> FastPath:
    """The fast path for this configuration and BentoML's configuration sources in `env`."""
    if not server.bentoml_fast_path:
        return FastPath(False, False, "server.bentoml_fast_path is false")
    source = tracing_configured(os.environ if env is None else env)
    if source:
        return FastPath(True, False, f"BentoML tracing is configured in {source}")
    return FastPath(True, True, "no BentoML tracing configured")


def tracing_configured(env: Mapping[str, str]) -> str | None:
    """Where BentoML tracing is configured (a variable's name), or None. Anything under a
    `tracing` key counts: an exporter, a sample rate, excluded URLs of the user's own. An
    unreadable file counts too (BentoML itself will say what is wrong with it)."""
    if "tracing." in env.get(CONFIG_OPTIONS_VARIABLE, ""):
        return CONFIG_OPTIONS_VARIABLE
    if overrides := env.get(CONFIG_OVERRIDES_VARIABLE):
        try:
            if _mentions_tracing(json.loads(overrides)):
                return CONFIG_OVERRIDES_VARIABLE
        except ValueError:
            return CONFIG_OVERRIDES_VARIABLE
    if path := env.get(CONFIG_FILE_VARIABLE):
        try:
            if _mentions_tracing(yaml.safe_load(Path(path).read_text())):
                return f"{CONFIG_FILE_VARIABLE} ({path})"
        except (OSError, yaml.YAMLError):
            return f"{CONFIG_FILE_VARIABLE} ({path})"
    return None


def _mentions_tracing(node: Any) -> bool:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tracing" and _has_value(value):
                return True
            dotted = isinstance(key, str) and (key.startswith("tracing.") or ".tracing." in key)
            if dotted and value is not None:
                return True
            if _mentions_tracing(value):
                return True
    elif isinstance(node, list):
        return any(_mentions_tracing(item) for item in node)
    return False


def _has_value(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_has_value(value) for value in node.values())
    return node is not None and node != []
