"""Fixtures for protocol tests: fake registries, in-process clients and a real HTTP server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from hf_runtime.errors import Overloaded
from hf_runtime.protocols import kserve_v1, kserve_v2
from tests.fakes import FakeRegistry, FakeServedModel


def make_fake_registry() -> FakeRegistry:
    """One fake per behaviour the routers must handle (names are what tests address)."""
    return FakeRegistry(
        [
            FakeServedModel("clf"),
            FakeServedModel("clf-probs", probabilities=True),
            FakeServedModel("ner", "token_classification", offsets=True),
            FakeServedModel("embed", "text_embedding"),
            FakeServedModel("rerank", "rerank"),  # a cross-encoder: text pairs only
            FakeServedModel("gpt", "text_generation"),
            FakeServedModel("ns:model"),  # a ':' in the name must not confuse ":predict"
            FakeServedModel("versioned", versions=["1", "2"]),
            FakeServedModel("busy", fail_with=Overloaded("queue is full")),
        ]
    )


def make_mounted_app(registry: FakeRegistry, *, v2_at_root: bool = False) -> Starlette:
    """The sub-apps mounted the way the service mounts them: V1 at "/v1"; V2 at "/v2", or at
    "/" with its own "/v2" prefix (the layout that also serves a bare `GET /v2`)."""
    v2_mount = (
        Mount("/", kserve_v2.make_app(registry, prefix="/v2"))
        if v2_at_root
        else Mount("/v2", kserve_v2.make_app(registry))
    )
    return Starlette(routes=[Mount("/v1", kserve_v1.make_app(registry)), v2_mount])


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a bug must show up as the 500 a client would see.
    with TestClient(make_mounted_app(registry), raise_server_exceptions=False) as test_client:
        yield test_client


class LiveServer:
    """An ASGI app on a real uvicorn server, on a free 127.0.0.1 port, in a thread.
    `url` is host:port (what tritonclient takes); `base_url` has the scheme."""

    def __init__(self, registry: FakeRegistry, app: ASGIApp | None = None) -> None:
        self.registry = registry
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self.base_url = f"http://{self.url}"
        app = app or make_mounted_app(registry, v2_at_root=True)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    """A real uvicorn server on a free 127.0.0.1 port, serving V1 at /v1 and V2 at /v2."""
    server = LiveServer(make_fake_registry())
    server.start()
    try:
        yield server
    finally:
        server.stop()
