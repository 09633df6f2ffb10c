"""Fixtures for the OpenAI API tests: scripted fakes behind the app, mounted like the service
mounts it (at /openai/v1 and at /v1), and an in-process httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from hf_runtime.protocols.openai import make_app
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import FakeModel, ScriptedGenerator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator()


@pytest.fixture
def fake_models(generator: ScriptedGenerator) -> FakeRegistry:
    return FakeRegistry(
        [
            FakeModel("gpt", generator=generator),
            FakeModel("minilm", "text_embedding"),
            FakeModel("clf", "sequence_classification"),
            FakeModel("loading", generator=ScriptedGenerator(), ready=False),
        ]
    )


@pytest.fixture
def root_app(fake_models: FakeRegistry) -> Starlette:
    app = make_app(fake_models)
    return Starlette(routes=[Mount("/openai/v1", app), Mount("/v1", app)])


@pytest.fixture
async def client(root_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=root_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
