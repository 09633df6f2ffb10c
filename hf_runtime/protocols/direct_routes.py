"""Protocol requests straight from the gateway to the protocol app that serves them.

BentoML routes a request to a mounted app through its own router (its system routes first,
then each mount in order, a mount matching only the paths its app routes: `PassiveMount`) and
its request-context middleware, which no protocol app reads. The gateway already knows the
protocol apps and their mounts (hf_runtime.protocols.mounts), so for a protocol path it can
pick the same app itself: the first mount whose app fully routes the method and path.
Anything else (no mount routes it, or only with another method: a 405) goes the usual way,
so BentoML's router still answers exactly as before. BentoML's system routes (/livez,
/readyz, /metrics, docs) never share a protocol path, so the choice is the router's.

An encoder hot-path route (hf_runtime.protocols.lean_route) resolves to a `LeanEndpoint`
too: the gateway calls that route with its app's exception handling, without the app's
router, which would match the path against every route again.

A resolved route is cached per (method, path); the cache is bounded (paths hold model
names, which clients choose).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Scope

from hf_runtime.protocols.lean_route import LeanEndpoint

MAX_CACHED_PATHS = 4096

# (app, the scope keys its mount sets, the route's LeanEndpoint when it is a lean route)
Resolved = tuple[ASGIApp, dict[str, Any], LeanEndpoint | None]


class DirectRoutes:
    """`resolve(scope)`: the protocol app serving this request, its mount's scope keys and
    the route's LeanEndpoint (or None), or None when the request must go through BentoML's
    router."""

    def __init__(self, mounts: Sequence[tuple[str, ASGIApp]]) -> None:
        # Starlette's Mount does the prefix matching and the child scope (root_path, ...).
        self._mounts = [Mount(path if path != "/" else "", app=app) for path, app in mounts]
        self._cache: dict[tuple[str, str], Resolved | None] = {}

    def resolve(self, scope: Scope) -> Resolved | None:
        key = (scope.get("method", ""), scope["path"])
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) >= MAX_CACHED_PATHS:
            self._cache.clear()
        resolved = self._cache[key] = self._find(scope)
        return resolved

    def _find(self, scope: Scope) -> Resolved | None:
        if scope.get("root_path"):  # behind a proxy prefix: leave it to BentoML's router
            return None
        for mount in self._mounts:
            match, child = mount.matches(scope)
            if match is not Match.FULL:
                continue
            inner = {**scope, **child}
            for route in getattr(mount.app, "routes", ()):
                route_match, route_child = route.matches(inner)
                if route_match is Match.FULL:  # the route the app's router would pick
                    lean = LeanEndpoint.for_route(mount.app, route, {**child, **route_child})
                    return mount.app, child, lean
        return None
