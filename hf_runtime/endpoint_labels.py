"""Bounded `endpoint` labels for BentoML's traffic metrics.

BentoML's traffic-metrics middleware (bentoml_service_request_total, ..._request_duration_seconds,
..._request_in_progress) labels every series with the raw request path. Every distinct path a
client invents (a 404 flood of random URLs, random model names in /v2/models/<name>/infer)
would become a new series, in the worker's memory and in one more Prometheus multiprocess
file: 1,500 distinct 8 KB paths grew the worker by hundreds of MiB. Here the label is the
route's template instead ("/v2/models/{name}/infer"; a static path is its own template), and
every path no route serves counts under one label, UNMATCHED. Only BentoML's label changes:
its metric names, label names and everything else stay BentoML's. `install()` (called by
service.py before BentoML builds its app) swaps in `BoundedTrafficMetrics`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Mount, Router, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

UNMATCHED = "unmatched"
_REAL_SCOPE = "hf_runtime.real_scope"
_CACHE_SIZE = 4096  # distinct matched paths remembered (static routes, configured models)


Template = tuple[re.Pattern[str], str, frozenset[str] | None]  # regex, template, methods


class EndpointLabels:
    """(method, path) -> label, from the route tree of the app under `app` (found on first
    use). Like Starlette's router: the first route whose path and method match, else the first
    whose path matches (it answers 405)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._templates: list[Template] | None = None
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, method: str, path: str) -> str:
        label = self._cache.get((method, path))
        if label is not None:
            return label
        if self._templates is None:
            self._templates = route_templates(_router_under(self._app))
        label = UNMATCHED
        for regex, template, methods in self._templates:
            if regex.match(path):
                if methods is None or method in methods:
                    label = template
                    break
                if label == UNMATCHED:
                    label = template
        if label != UNMATCHED and len(self._cache) < _CACHE_SIZE:
            self._cache[(method, path)] = label
        return label


def _router_under(app: Any) -> Router | None:
    """The Starlette router at the bottom of a middleware stack."""
    for _ in range(64):  # a middleware stack, never a cycle
        if app is None or isinstance(app, Router):
            return app
        app = getattr(app, "app", None) or getattr(app, "router", None)
    return None


def route_templates(router: Router | None) -> list[Template]:
    """(full-path regex, full template, methods) of every route, mounts included, in routing
    order."""
    found: list[Template] = []
    if router is not None:
        _collect(router.routes, "", found)
    return found


def _collect(
    routes: list[BaseRoute], prefix: str, found: list[tuple[re.Pattern[str], str]]
) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        if isinstance(route, Mount):
            _collect(list(route.routes), prefix + path, found)
        else:
            template = prefix + path
            methods = getattr(route, "methods", None)
            allowed = frozenset(methods) if methods else None
            found.append((compile_path(template)[0], template, allowed))


def install() -> None:
    """Make BentoML build its HTTP traffic metrics with bounded endpoint labels."""
    from bentoml._internal.server.http import instruments

    if not issubclass(instruments.RunnerTrafficMetricsMiddleware, BoundedTrafficMetrics):
        instruments.RunnerTrafficMetricsMiddleware = _bounded_class(
            instruments.RunnerTrafficMetricsMiddleware
        )


def _bounded_class(base: type) -> type:
    class Bounded(BoundedTrafficMetrics, base):  # type: ignore[misc, valid-type]
        pass

    Bounded.__name__ = base.__name__  # BentoML and tests name middlewares by class name
    return Bounded


class BoundedTrafficMetrics:
    """Mixed into BentoML's middleware: BentoML reads the label from `scope["path"]`, so it
    gets a copy of the scope whose path is the label; the app below gets the real scope."""

    app: ASGIApp

    def __init__(self, app: ASGIApp, *args: Any, **kwargs: Any) -> None:
        self._labels = EndpointLabels(app)
        super().__init__(_WithRealScope(app), *args, **kwargs)  # type: ignore[call-arg]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            label = self._labels(scope.get("method", "GET"), scope["path"])
            scope = {**scope, "path": label, _REAL_SCOPE: scope}
        await super().__call__(scope, receive, send)  # type: ignore[misc]


class _WithRealScope:
    """Hands the app below the real scope again (an `app` attribute keeps the stack walkable)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope.get(_REAL_SCOPE, scope), receive, send)
