"""The gateway's direct dispatch (the BentoML fast path, hf_runtime.fast_path): every route
answers exactly as through the router BentoML mounts the apps with, request ids and request
metrics included; anything no app fully routes still goes through that router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.testclient import TestClient

from hf_runtime.protocols.direct_routes import MAX_CACHED_PATHS, DirectRoutes
from hf_runtime.protocols.gateway import Gateway, GatewaySettings, InFlight
from hf_runtime.protocols.mounts import protocol_apps
from tests.observability.support import sample
from tests.protocols.conftest import make_fake_registry
from tests.served_app import make_served_app

V2_INFER = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
# (method, path, JSON body): every protocol surface, its errors, and what is not a protocol's.
REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/clf", None),
    ("GET", "/v1/models/nope", None),
    ("POST", "/v1/models/clf:predict", {"instances": ["I love it", "meh"]}),
    ("POST", "/v1/models/ner:predict", {"instances": ["my name is Ada"]}),
    ("POST", "/v1/models/clf:predict", {"instances": []}),
    ("POST", "/v1/models/nope:predict", {"instances": ["a"]}),
    ("POST", "/v1/models/busy:predict", {"instances": ["a"]}),
    ("POST", "/v1/models/ns:model:predict", {"instances": ["ab"]}),
    ("PUT", "/v1/models/clf:predict", None),
    ("POST", "/v1/models", None),
    ("GET", "/v1/models/clf/extra", None),
    ("POST", "/v1/models/clf:explain", {"instances": ["a"]}),
    ("GET", "/v2", None),
    ("GET", "/v2/health/ready", None),
    ("GET", "/v2/models/clf", None),
    ("POST", "/v2/models/clf/infer", V2_INFER),
    ("POST", "/v2/models/nope/infer", V2_INFER),
    ("POST", "/v2/models/clf/infer", {"inputs": "junk"}),
    ("POST", "/v1/embeddings", {"model": "embed", "input": "hi"}),
    ("POST", "/openai/v1/embeddings", {"model": "embed", "input": ["a", "b"]}),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/chat/completions", {"model": "gpt"}),
    ("GET", "/openai/v1/models", None),
    ("POST", "/rerank", {"model": "rerank", "query": "q", "documents": ["a", "b"]}),
    ("POST", "/v2/rerank", {"model": "rerank", "query": "q", "documents": ["a"]}),
    ("POST", "/score", {"model": "rerank", "text_1": "q", "text_2": ["a"]}),
    ("GET", "/v1/openapi.json", None),
    ("GET", "/v2/openapi.json", None),
    ("GET", "/v1/nothing", None),
    ("GET", "/v2/nothing", None),
    ("GET", "/openai/nothing", None),
    ("GET", "/livez", None),
    ("GET", "/elsewhere", None),
]
VOLATILE = frozenset({"id", "created", "system_fingerprint"})  # differ on every answer


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _answer(client: TestClient, method: str, path: str, body: Any) -> dict[str, Any]:
    response = client.request(method, path, json=body, headers={"x-request-id": "same-id-7"})
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "allow": response.headers.get("allow"),
        "request id": response.headers.get("x-request-id"),
        "body": _stable(response.json()) if is_json else response.text,
    }


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[bool, TestClient]]:
    with (
        TestClient(make_served_app(make_fake_registry(), direct=True)) as direct,
        TestClient(make_served_app(make_fake_registry(), direct=False)) as routed,
    ):
        yield {True: direct, False: routed}


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS, ids=lambda v: str(v)[:40])
def test_every_route_answers_the_same_with_and_without_direct_dispatch(
    clients: dict[bool, TestClient], method: str, path: str, body: Any
) -> None:
    direct = _answer(clients[True], method, path, body)
    routed = _answer(clients[False], method, path, body)
    assert direct == routed
    assert direct["request id"] == "same-id-7"


def test_protocol_requests_really_skip_the_router(clients: dict[bool, TestClient]) -> None:
    gateway = clients[True].app
    assert isinstance(gateway, Gateway) and gateway.direct is not None
    clients[True].post("/v1/models/clf:predict", json={"instances": ["a"]})
    clients[True].get("/v1/nothing")
    cache = gateway.direct._cache
    assert cache[("POST", "/v1/models/clf:predict")] is not None
    assert cache[("GET", "/v1/nothing")] is None  # no app routes it: the router answers
    assert isinstance(clients[False].app, Gateway) and clients[False].app.direct is None


def test_request_metrics_are_kept(clients: dict[bool, TestClient]) -> None:
    labels = {"model": "clf", "protocol": "v1", "status_class": "2xx"}
    before = sample("hf_runtime_request_duration_seconds_count", **labels)
    response = clients[True].post("/v1/models/clf:predict", json={"instances": ["a"]})
    assert response.status_code == 200
    assert sample("hf_runtime_request_duration_seconds_count", **labels) == before + 1


def _resolved_app(routes: DirectRoutes, method: str, path: str) -> Any:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    resolved = routes.resolve(scope)
    return None if resolved is None else resolved[0]


def test_the_first_mount_whose_app_routes_the_path_wins() -> None:
    mounts = protocol_apps(make_fake_registry())
    v1, v2, anthropic, openai, _, scoring, _tei = (app for _, app in mounts)
    routes = DirectRoutes(mounts)
    assert _resolved_app(routes, "POST", "/v1/messages") is anthropic
    assert _resolved_app(routes, "GET", "/v1/models") is v1  # KServe's, mounted first
    assert _resolved_app(routes, "POST", "/v1/chat/completions") is openai
    assert _resolved_app(routes, "POST", "/openai/v1/chat/completions") is openai
    assert _resolved_app(routes, "POST", "/v2/models/m/infer") is v2
    assert _resolved_app(routes, "POST", "/v2/rerank") is scoring  # not a V2 route
    assert _resolved_app(routes, "PUT", "/v1/models/m:predict") is None  # 405: the router's
    assert _resolved_app(routes, "GET", "/v1/nothing") is None
    behind_proxy = {"type": "http", "method": "GET", "path": "/v1/models", "root_path": "/x"}
    assert DirectRoutes(mounts).resolve(behind_proxy) is None


def test_the_route_cache_is_bounded() -> None:
    routes = DirectRoutes(protocol_apps(make_fake_registry()))
    for index in range(MAX_CACHED_PATHS + 10):
        _resolved_app(routes, "POST", f"/v1/models/m{index}:predict")
    assert len(routes._cache) <= MAX_CACHED_PATHS


def test_no_direct_dispatch_past_bentomls_cors_middleware() -> None:
    mounts = protocol_apps(make_fake_registry())
    behind_cors = CORSMiddleware(make_served_app(make_fake_registry()), allow_origins=["*"])
    gateway = Gateway(behind_cors, GatewaySettings(), InFlight(), direct=mounts)
    assert gateway.direct is None
