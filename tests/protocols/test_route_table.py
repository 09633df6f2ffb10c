"""The route table (hf_runtime.routes) is the one place a route is declared: the protocol apps
route exactly what it says, the gateway classifies every declared path as its protocol's, and
no other module writes a route's path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from hf_runtime.config import REPO_ROOT
from hf_runtime.fast_path import PROTOCOL_URL_PATTERNS
from hf_runtime.protocols.mounts import OPENAPI_DOCUMENTS, protocol_apps
from hf_runtime.routes import (
    MOUNTS,
    OPENAI_ROOT_PATHS,
    PROBE_PATHS,
    ROUTES,
    SURFACE_PREFIXES,
    Route,
    Surface,
    route_at,
    surface_for,
)
from tests.protocols.conftest import make_fake_registry

PACKAGE = REPO_ROOT / "hf_runtime"


def routed() -> set[tuple[str, str]]:
    """(method, full path) of every route the mounted protocol apps serve."""
    found: set[tuple[str, str]] = set()
    for mount, app in protocol_apps(make_fake_registry()):
        for route in app.routes:
            if isinstance(route, APIRoute):
                found.update((m, mount.rstrip("/") + route.path) for m in route.methods)
    return found


def declared() -> set[tuple[str, str]]:
    return {
        (route.method, path)
        for route in ROUTES
        if not route.served_by_bentoml
        for path in route.paths
    }


def test_the_apps_route_exactly_what_the_table_declares() -> None:
    apps, table = routed(), declared()
    assert apps - table == set(), "routed by an app, missing from hf_runtime.routes"
    assert table - apps == set(), "declared in hf_runtime.routes, routed by no app"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.paths[0]}")
def test_the_gateway_classifies_each_path_as_its_routes(route: Route) -> None:
    for path in route.paths:
        # The first route declared at a path answers it, as the first app mounted there does
        # (KServe V1's GET /v1/models before OpenAI's).
        answering = route_at(route.method, path)
        assert answering is not None
        expected = Surface.OPENAI if path in answering.root_aliases else answering.surface
        if answering.probe:
            expected = Surface.PROBE
        assert surface_for(path) is expected, path


def test_only_probes_stay_open_and_root_aliases_answer_like_openai() -> None:
    assert {"/livez", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"} == PROBE_PATHS
    assert {"/rerank", "/v2/rerank", "/score", "/tokenize", "/detokenize"} <= OPENAI_ROOT_PATHS


def test_the_fast_path_patterns_cover_every_protocol_route() -> None:
    import re

    for route in ROUTES:
        if route.served_by_bentoml:
            continue
        for path in route.paths:
            url = "http://host" + path.replace("{name}", "m").replace("{model_version}", "1")
            assert any(re.search(p, url) for p in PROTOCOL_URL_PATTERNS), url
    assert not any(re.search(p, "http://host/metrics") for p in PROTOCOL_URL_PATTERNS)
    assert not any(re.search(p, "http://host/docs.json") for p in PROTOCOL_URL_PATTERNS)


def test_every_route_has_documented_error_statuses() -> None:
    for route in ROUTES:
        statuses = route.error_statuses()
        assert {400, 413, 500} <= statuses
        assert (401 in statuses) is not route.probe


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_other_module_writes_a_route_path() -> None:
    """A route's path (relative or full), a mount or an OpenAPI document path is written in
    hf_runtime/routes.py only ("/" aside: too common to tell)."""
    paths = {p for route in ROUTES for p in (route.path, *route.paths)}
    paths |= {m for mounts in MOUNTS.values() for m in mounts}
    paths |= {prefix for prefix, _ in SURFACE_PREFIXES} | set(OPENAPI_DOCUMENTS)
    paths -= {"", "/"}
    written = [
        f"{path.relative_to(REPO_ROOT)}:{line} {value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "routes.py" or path.parent != PACKAGE
        for line, value in _string_constants(path)
        if value in paths
    ]
    assert written == []
