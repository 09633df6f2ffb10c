"""Bounded endpoint labels for BentoML's traffic metrics (hf_runtime.endpoint_labels), on a
route tree shaped like the service's: protocol apps in PassiveMounts under one router."""

from __future__ import annotations

from _bentoml_impl.server.mount import PassiveMount
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hf_runtime.endpoint_labels import UNMATCHED, EndpointLabels
from tests.protocols.conftest import make_fake_registry
from tests.served_app import make_served_app


def ok(_: object) -> PlainTextResponse:
    return PlainTextResponse("")


def labels() -> EndpointLabels:
    protocols = make_served_app(make_fake_registry())  # the Gateway over every protocol app
    inner = Starlette(routes=[Route("/livez", ok), PassiveMount("", protocols.app)])
    return EndpointLabels(inner)


def test_routes_are_labelled_by_template() -> None:
    label = labels()
    assert label("GET", "/livez") == "/livez"
    assert label("POST", "/v1/models/clf:predict") == "/v1/models/{name}:predict"
    assert label("POST", "/v1/models/" + "x" * 8000 + ":predict") == "/v1/models/{name}:predict"
    assert label("POST", "/v2/models/anything/infer") == "/v2/models/{name}/infer"
    assert label("POST", "/v1/chat/completions") == "/v1/chat/completions"


def test_every_unknown_path_shares_one_label() -> None:
    label = labels()
    paths = [f"/{n}/" + "y" * 8000 for n in range(200)]
    assert {label("GET", path) for path in paths} == {UNMATCHED}
    assert len(label._cache) < 50  # unmatched paths are not remembered
