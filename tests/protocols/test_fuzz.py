"""Fuzz every protocol with schemathesis, through the documents the server itself publishes.

A real uvicorn server serves `make_served_app` (every app behind the Gateway, as BentoML mounts
them) over the fake registry. Each app's OpenAPI document is fetched from the server; every
operation gets schema-valid and schema-breaking requests, at every prefix the document names.
Each response must:
  - never be a 5xx (`not_a_server_error`);
  - have a status, content type and body the document lists (`status_code_conformance`,
    `content_type_conformance`, `response_schema_conformance`).
Not checked: `negative_data_rejection` (bodies allow extra keys and V1 takes "inputs" for
"instances", so some schema-breaking requests are rightly served) and
`positive_data_acceptance` (schema-valid requests may name unknown models or values out of
the ranges the handlers check, rightly refused with 400/404).

`pytest -s` prints how many requests each run sent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction

from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.protocols.mounts import OPENAPI_DOCUMENTS
from tests.fakes import FakeRegistry
from tests.protocols.conftest import make_fake_registry
from tests.served_app import make_served_app

pytestmark = pytest.mark.slow

API_KEY = "fuzz-test-key-0123"
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# Per operation, mode and prefix. About 30 operation x prefix pairs x 2 modes: bounded so
# each server's run stays well under a minute on two cores.
MAX_EXAMPLES = 25
UNKEYED_EXAMPLES = 4  # on the keyed server, without the key: every answer must be a 401


class ServedAppServer:
    """`make_served_app` on a real uvicorn server, on a free 127.0.0.1 port, in a thread."""

    def __init__(self, registry: FakeRegistry, settings: GatewaySettings) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        app = make_served_app(registry, settings)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ServedAppServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class FuzzRun:
    """Sends schemathesis cases to one server and tallies what came back."""

    base_url: str
    headers: dict[str, str]
    model_names: list[str]
    statuses: Counter[int] = field(default_factory=Counter)
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def load(self, document: str) -> Any:
        schema = schemathesis.openapi.from_url(
            self.base_url + document, headers=self.headers, timeout=10
        )
        return schema

    def fuzz(
        self, document: str, max_examples: int, expect: Callable[[int], bool] | None = None
    ) -> None:
        """Every operation of `document`, at every server (prefix) it names, in both modes."""
        schema = self.load(document)
        prefixes = [server["url"] for server in schema.raw_schema.get("servers", [])] or [""]
        for result in schema.get_all_operations():
            operation = result.ok()
            for prefix in prefixes:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    self._fuzz_operation(operation, mode, prefix, max_examples, expect)

    def _fuzz_operation(
        self,
        operation: Any,
        mode: GenerationMode,
        prefix: str,
        max_examples: int,
        expect: Callable[[int], bool] | None,
    ) -> None:
        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,  # nothing written into the repository
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def send(case: Any, data: st.DataObject) -> None:
            self._aim_at_real_models(case, data)
            response = case.call(
                base_url=self.base_url + prefix,
                session=self.session,
                headers=self.headers,
                timeout=10,
            )
            self.statuses[response.status_code] += 1
            if expect is not None:
                assert expect(response.status_code), (case.as_curl_command(), response.text)
            case.validate_response(response, checks=CHECKS, headers=self.headers)

        send()

    def _aim_at_real_models(self, case: Any, data: st.DataObject) -> None:
        """Half the time, name a model that exists: random names only ever reach a 404."""
        if not data.draw(st.booleans(), label="real model"):
            return
        name = data.draw(st.sampled_from(self.model_names), label="model")
        if case.path_parameters and "name" in case.path_parameters:
            case.path_parameters["name"] = name
            if "model_version" in case.path_parameters:
                version = data.draw(st.sampled_from(["1", "2", "3"]), label="version")
                case.path_parameters["model_version"] = version
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = name


@pytest.fixture(scope="module")
def model_names() -> list[str]:
    return make_fake_registry().names()


def _fuzz_all(run: FuzzRun, label: str, max_examples: int) -> None:
    started = time.monotonic()
    for document in OPENAPI_DOCUMENTS:
        run.fuzz(document, max_examples)
    elapsed = time.monotonic() - started
    print(
        f"\n[fuzz {label}] {run.requests} requests in {elapsed:.1f}s; "
        f"statuses {dict(sorted(run.statuses.items()))}"
    )
    assert not any(status >= 500 for status in run.statuses)  # checked per case too


def test_fuzz_every_protocol(model_names: list[str]) -> None:
    with ServedAppServer(make_fake_registry(), GatewaySettings()) as server:
        run = FuzzRun(server.url, {}, model_names)
        _fuzz_all(run, "no API key", MAX_EXAMPLES)
    assert run.statuses[200] > 0  # the fuzzer got past validation, not only into 4xx


def test_fuzz_every_protocol_with_api_key(model_names: list[str]) -> None:
    settings = GatewaySettings(api_keys=(API_KEY,))
    with ServedAppServer(make_fake_registry(), settings) as server:
        run = FuzzRun(server.url, {"Authorization": f"Bearer {API_KEY}"}, model_names)
        _fuzz_all(run, "API key sent", MAX_EXAMPLES)
        assert run.statuses[401] == 0
        assert run.statuses[200] > 0

        # Without the key: every protocol route answers a documented 401, probes stay open.
        keyless = FuzzRun(server.url, {}, model_names)
        keyed_schema_headers = {"Authorization": f"Bearer {API_KEY}"}
        keyless.load = lambda document: schemathesis.openapi.from_url(  # type: ignore[method-assign]
            server.url + document, headers=keyed_schema_headers, timeout=10
        )
        started = time.monotonic()
        for document in OPENAPI_DOCUMENTS:
            keyless.fuzz(document, UNKEYED_EXAMPLES, expect=lambda s: s in (401, 200, 503))
        print(
            f"\n[fuzz without the key] {keyless.requests} requests in "
            f"{time.monotonic() - started:.1f}s; statuses {dict(sorted(keyless.statuses.items()))}"
        )
        assert keyless.statuses[401] > 0


def test_documents_are_served_under_their_mounts() -> None:
    """Each document is at its mount's openapi.json, states the limits and lists no 422."""
    settings = GatewaySettings(max_request_bytes=12345)
    with ServedAppServer(make_fake_registry(), settings) as server:
        for document, title in zip(
            OPENAPI_DOCUMENTS,
            ["KServe V1", "Open Inference Protocol V2", "hf-runtime OpenAI-compatible API"],
            strict=True,
        ):
            response = requests.get(server.url + document, timeout=10)
            assert response.status_code == 200, document
            body = response.json()
            assert body["info"]["title"] == title
            assert "422" not in response.text
            # The limit reaches the document only when protocol_apps is given it.
            assert "max_request_bytes" in body["info"]["description"]
