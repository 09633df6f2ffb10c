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
from hf_runtime.protocols.lean_route import LeanEndpoint
from hf_runtime.protocols.mounts import protocol_apps
from tests.fakes import FakeServedModel
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


# The encoder hot-path routes, which the gateway calls straight (LeanEndpoint, without their
# app's router), and what takes them off the lean path inside: FastAPI's own validation, a body
# that is not JSON, a model's failure, a bug.
ENCODER_ROUTES = [
    "/v1/models/clf:predict",
    "/v2/models/clf/infer",
    "/v1/embeddings",
    "/openai/v1/embeddings",
    "/v1/score",
    "/v1/rerank",
    "/score",
]
LEAN_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/embeddings", {"model": "embed"}),
    ("POST", "/openai/v1/embeddings", [1, 2]),
    ("POST", "/v1/embeddings", {"model": "nope", "input": "a"}),
    ("POST", "/v1/embeddings", {"model": "boom", "input": "a"}),
    ("POST", "/v1/score", {"model": "rerank", "text_1": "q", "text_2": "a"}),
    ("POST", "/v1/rerank", {"model": "rerank", "query": "q"}),
    ("POST", "/v2/models/busy/infer", V2_INFER),
    ("POST", "/v2/models/boom/infer", V2_INFER),
    ("POST", "/v1/models/boom:predict", {"instances": ["a"]}),
    ("POST", "/v1/models/clf:predict", "not JSON"),
    ("POST", "/v1/embeddings", "not JSON"),
]


@pytest.fixture(scope="module")
def failing_clients() -> Iterator[dict[bool, TestClient]]:
    def registry() -> Any:
        fakes = make_fake_registry()
        boom = FakeServedModel("boom", "text_embedding")
        boom.fail_with = RuntimeError("a bug")  # type: ignore[assignment]
        fakes.models["boom"] = boom
        return fakes

    with (
        TestClient(make_served_app(registry(), direct=True), raise_server_exceptions=False) as a,
        TestClient(make_served_app(registry(), direct=False), raise_server_exceptions=False) as b,
    ):
        yield {True: a, False: b}


@pytest.mark.parametrize("path", ENCODER_ROUTES)
def test_encoder_routes_are_called_straight(path: str) -> None:
    routes = DirectRoutes(protocol_apps(make_fake_registry()))
    resolved = routes.resolve({"type": "http", "method": "POST", "path": path, "root_path": ""})
    assert resolved is not None and isinstance(resolved[2], LeanEndpoint)
    get = {"type": "http", "method": "GET", "path": "/v1/models", "root_path": ""}
    assert routes.resolve(get) is not None and routes.resolve(get)[2] is None  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "body"), LEAN_REQUESTS, ids=lambda v: str(v)[:40])
def test_lean_routes_fail_the_same_as_through_their_app(
    failing_clients: dict[bool, TestClient], method: str, path: str, body: Any
) -> None:
    answers = []
    for direct in (True, False):
        if isinstance(body, str):
            response = failing_clients[direct].request(method, path, content=body)
            is_json = response.headers.get("content-type", "").startswith("application/json")
            answers.append((response.status_code, response.json() if is_json else response.text))
        else:
            answers.append(_answer(failing_clients[direct], method, path, body))
    assert answers[0] == answers[1]
