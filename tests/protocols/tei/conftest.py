"""TEI's routes in-process: every protocol app behind the gateway, over the fake models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient

from tests.fakes import FakeRegistry
from tests.protocols.conftest import make_fake_registry
from tests.served_app import make_served_app

SCHEMAS = Path(__file__).parent.parent / "schemas" / "tei_openapi.json"


def tei_schema(name: str) -> dict[str, Any]:
    """TEI's schema `name`, resolvable (its $refs point into the same document)."""
    document = json.loads(SCHEMAS.read_text())
    return {"$ref": f"#/components/schemas/{name}", **document}


def assert_tei_shape(body: Any, name: str) -> None:
    jsonschema.validate(body, tei_schema(name))


def assert_tei_error(response: Any, status: int, error_type: str, words: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert_tei_shape(body, "ErrorResponse")
    assert body["error_type"] == error_type, body
    assert words in body["error"], body


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
def tei(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_served_app(registry), raise_server_exceptions=False) as client:
        yield client
