"""The gateway in front of every route, in-process: keys, limits, drain, 404s, 500s, ids."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from hf_runtime.observability.metrics import event_metrics
from hf_runtime.protocols.gateway import (
    GatewaySettings,
    InFlight,
    Surface,
    key_matches,
    surface_for,
)
from tests.fakes import FakeRegistry, FakeServedModel
from tests.protocols.conftest import make_fake_registry
from tests.served_app import make_served_app

KEY = "gateway-key-0001"
OTHER_KEY = "gateway-key-0002"
V2_INFER = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}


def client_for(registry: FakeRegistry | None = None, **settings: object) -> TestClient:
    app = make_served_app(registry or make_fake_registry(), GatewaySettings(**settings))  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    with client_for(api_keys=(KEY, OTHER_KEY)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "surface"),
    [
        ("/v1/models/m:predict", Surface.KSERVE_V1),
        ("/v1/models", Surface.KSERVE_V1),
        ("/v1/chat/completions", Surface.OPENAI),
        ("/v1/nothing", Surface.OPENAI),
        ("/openai/v1/models", Surface.OPENAI),
        ("/v2", Surface.KSERVE_V2),
        ("/v2/models/m/infer", Surface.KSERVE_V2),
        ("/v2/health/ready", Surface.PROBE),
        ("/readyz", Surface.PROBE),
        ("/metrics", Surface.METRICS),
        ("/docs.json", Surface.OTHER),
        ("/v10/x", Surface.OTHER),
    ],
)
def test_paths_map_to_surfaces(path: str, surface: Surface) -> None:
    assert surface_for(path) is surface


def test_key_comparison() -> None:
    assert key_matches(KEY, [KEY, OTHER_KEY]) and key_matches(OTHER_KEY, [KEY, OTHER_KEY])
    assert not key_matches(KEY[:-1], [KEY]) and not key_matches("", [KEY])
    assert not key_matches("é" * 20, [KEY])  # non-ASCII is compared, never an exception


def test_missing_and_wrong_keys_are_401_in_each_protocols_shape(keyed: TestClient) -> None:
    v1 = keyed.post("/v1/models/clf:predict", json={"instances": ["a"]})
    assert v1.status_code == 401 and v1.json() == {"error": v1.json()["error"]}
    assert "missing API key" in v1.json()["error"]
    assert v1.headers["www-authenticate"] == "Bearer"
    v2 = keyed.post("/v2/models/clf/infer", json=V2_INFER, headers={"x-api-key": "nope-nope"})
    assert v2.status_code == 401 and v2.json() == {"error": "invalid API key"}
    chat = keyed.post("/openai/v1/chat/completions", json={}, headers={"Authorization": "Bearer x"})
    assert chat.status_code == 401
    assert chat.json()["error"] == {
        "message": "invalid API key", "type": "AuthenticationError", "param": None, "code": 401,
    }  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {OTHER_KEY}"},
     {"x-api-key": KEY}],
)  # fmt: skip
def test_either_header_and_any_configured_key_is_accepted(
    keyed: TestClient, headers: dict[str, str]
) -> None:
    assert keyed.post(
        "/v1/models/clf:predict", json={"instances": ["a"]}, headers=headers
    ).is_success
    assert keyed.get("/v2/models", headers=headers).is_success
    assert keyed.get("/openai/v1/models", headers=headers).is_success


def test_probes_stay_open_and_metrics_only_when_protected() -> None:
    with client_for(api_keys=(KEY,)) as test_client:
        for path in ("/livez", "/readyz", "/v2/health/live", "/v2/health/ready"):
            assert test_client.get(path).status_code == 200, path
    with client_for(api_keys=(KEY,), protect_metrics=True) as test_client:
        assert test_client.get("/metrics").status_code == 401
        # Past the gateway: the test app has no /metrics route, so it is not ours to answer.
        assert test_client.get("/metrics", headers={"x-api-key": KEY}).status_code == 404


def test_no_key_configured_means_open(registry: FakeRegistry) -> None:
    with client_for(registry) as test_client:
        assert test_client.get("/v2/models").status_code == 200


def test_body_over_the_limit_is_413_before_reading() -> None:
    with client_for(max_request_bytes=1024) as test_client:
        big = {"instances": ["x" * 2000]}
        v1 = test_client.post("/v1/models/clf:predict", json=big)
        assert v1.status_code == 413 and "max_request_bytes" in v1.json()["error"]
        assert v1.headers["connection"] == "close"
        openai = test_client.post("/v1/embeddings", json={"model": "embed", "input": "x" * 2000})
        assert openai.status_code == 413
        assert openai.json()["error"]["type"] == "RequestTooLargeError"
        small = test_client.post("/v1/models/clf:predict", json={"instances": ["x"]})
        assert small.status_code == 200


def test_streamed_body_without_length_is_cut_at_the_limit() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    with client_for(max_request_bytes=1024) as test_client:
        for path in ("/v1/models/clf:predict", "/v2/models/clf/infer"):
            response = test_client.post(path, content=chunks())
            assert response.status_code == 413, (path, response.text)
            assert "max_request_bytes" in response.json()["error"]
        response = test_client.post("/v1/chat/completions", content=chunks())
        assert response.status_code == 413 and response.json()["error"]["code"] == 413


def test_bad_content_length_is_400() -> None:
    with client_for() as test_client:
        response = test_client.post(
            "/v1/models/clf:predict", content=b"{}", headers={"content-length": "x2"}
        )
        assert response.status_code == 400


def test_draining_refuses_protocol_requests_but_not_probes() -> None:
    with client_for(is_draining=lambda: True) as test_client:
        refused = test_client.post("/v1/models/clf:predict", json={"instances": ["a"]})
        assert refused.status_code == 503 and "shutting down" in refused.json()["error"]
        assert refused.headers["connection"] == "close"
        chat = test_client.post("/v1/chat/completions", json={})
        assert chat.status_code == 503 and chat.json()["error"]["code"] == 503
        assert test_client.get("/livez").status_code == 200


@pytest.mark.parametrize(
    ("path", "openai_shape"),
    [("/v1/nothing", True), ("/openai/v1/x/y", True), ("/v2/nothing", False),
     ("/v1/models/a/b/c", False), ("/v2/models/clf/infer/x", False)],
)  # fmt: skip
def test_unmatched_protocol_paths_get_json_404(path: str, openai_shape: bool) -> None:
    with client_for() as test_client:
        response = test_client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert isinstance(error, dict) is openai_shape
        assert response.headers["x-request-id"]


def test_405_keeps_allow() -> None:
    with client_for() as test_client:
        response = test_client.post("/v1/models")
        assert response.status_code == 405 and response.headers["allow"] == "GET"


def test_a_bug_is_a_500_in_shape_and_the_connection_stays_usable() -> None:
    registry = FakeRegistry([FakeServedModel("bug", fail_with=ZeroDivisionError("boom"))])  # type: ignore[arg-type]
    with client_for(registry) as test_client:
        response = test_client.post("/v1/models/bug:predict", json={"instances": ["a"]})
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error: ZeroDivisionError"}
        assert "boom" not in response.text


def test_request_ids_are_echoed_when_sane_and_replaced_otherwise() -> None:
    with client_for() as test_client:
        assert (
            test_client.get("/v2/models", headers={"x-request-id": "abc-1"}).headers["x-request-id"]
            == "abc-1"
        )
        replaced = test_client.get("/v2/models", headers={"x-request-id": "a\tb"})
        assert (
            replaced.headers["x-request-id"] != "a\tb"
            and len(replaced.headers["x-request-id"]) == 32
        )


def test_requests_are_counted_while_in_flight_and_timed_by_model() -> None:
    in_flight = InFlight()
    app = make_served_app(make_fake_registry(), GatewaySettings(), in_flight)
    histogram = event_metrics().request_duration
    before = histogram.labels(model="clf", protocol="v1", status_class="2xx")._sum.get()
    with TestClient(app) as test_client:
        assert test_client.post("/v1/models/clf:predict", json={"instances": ["a"]}).is_success
        test_client.get("/livez")
    assert in_flight.count == 0
    after = histogram.labels(model="clf", protocol="v1", status_class="2xx")._sum.get()
    assert after > before
    assert json.dumps(in_flight.count) == "0"


@pytest.mark.parametrize(
    ("path", "body", "protocol"),
    [
        ("/v1/responses", {"model": "gpt", "input": "a", "max_output_tokens": 2}, "openai"),
        ("/v1/responses/input_tokens", {"model": "gpt", "input": "a"}, "openai"),
        ("/v1/messages", {"model": "gpt", "max_tokens": 2,
                          "messages": [{"role": "user", "content": "a"}]}, "anthropic"),
        ("/v1/messages/count_tokens", {"model": "gpt",
                                       "messages": [{"role": "user", "content": "a"}]},
         "anthropic"),
    ],
)  # fmt: skip
def test_agent_api_requests_are_timed_under_their_protocol(
    path: str, body: dict[str, object], protocol: str
) -> None:
    histogram = event_metrics().request_duration
    labels = {"model": "gpt", "protocol": protocol, "status_class": "2xx"}
    before = histogram.labels(**labels)._sum.get()
    with client_for() as test_client:
        assert test_client.post(path, json=body).is_success
    assert histogram.labels(**labels)._sum.get() > before
