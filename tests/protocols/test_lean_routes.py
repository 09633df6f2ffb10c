"""The encoder routes' hot path (protocols.json_body.LeanJSONRoute, protocols.lean_route): a
well-formed request skips FastAPI's per-request machinery, anything else takes FastAPI's own
path and is answered exactly as before; disconnects still drop the work (cancel_on_disconnect)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import fastapi.routing
import httpx
import pytest
from starlette.requests import Request

from hf_runtime.protocols.disconnect import CLIENT_CLOSED, cancel_on_disconnect
from hf_runtime.protocols.json_body import JSONBodyRoute, LeanJSONRoute
from hf_runtime.protocols.lean_route import LeanRoute
from hf_runtime.protocols.openai import make_app as make_openai_app
from tests.protocols.conftest import make_fake_registry
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

LEAN = {
    "/v1/embeddings": {"model": "embed", "input": "hello"},
    "/openai/v1/embeddings": {"model": "embed", "input": "hello"},
    "/v1/score": {"model": "embed", "text_1": "a", "text_2": "b"},
    "/v1/rerank": {"model": "embed", "query": "a", "documents": ["b"]},
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_served_app(make_fake_registry()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths FastAPI solved dependencies for (its per-request machinery)."""
    calls: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def spy(*, request: Request, **kwargs: Any) -> Any:
        calls.append(request.scope["path"])
        return await real(request=request, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", spy)
    return calls


def test_the_encoder_routes_are_lean_and_keep_their_documents() -> None:
    app = make_openai_app(make_fake_registry())
    lean = {r.path for r in app.routes if isinstance(r, LeanJSONRoute)}
    assert {"/embeddings", "/score", "/rerank"} <= lean
    assert all(isinstance(r, JSONBodyRoute) for r in app.routes if r.path in lean)
    paths = app.openapi()["paths"]
    schema = paths["/embeddings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/EmbeddingRequest"}


@pytest.mark.parametrize(("path", "body"), LEAN.items())
async def test_a_well_formed_request_skips_fastapi(
    http: httpx.AsyncClient, solved: list[str], path: str, body: dict[str, Any]
) -> None:
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    assert solved == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"model": "embed"}', "application/json"),
        ('{"model": "embed", "input": "x"', "application/json"),
        ("[1, 2]", "application/json"),
        ('{"model": "embed", "input": "x"}', "text/plain"),
        ("", "application/json"),
    ],
    ids=["missing field", "bad JSON", "not an object", "not JSON", "empty"],
)
async def test_anything_else_takes_fastapis_path(
    http: httpx.AsyncClient, solved: list[str], content: str, content_type: str
) -> None:
    headers = {"content-type": content_type}
    response = await http.post("/v1/embeddings", content=content, headers=headers)
    assert response.status_code == 400 and set(response.json()) == {"error"}, response.text
    assert solved in (["/v1/embeddings"], [])  # bad JSON is refused before solving


async def test_gateway_duties_hold_on_the_lean_routes() -> None:
    from hf_runtime.protocols.gateway import GatewaySettings

    app = make_served_app(
        make_fake_registry(), GatewaySettings(api_keys=("k",), max_request_bytes=80)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path, body in LEAN.items():
            refused = await client.post(path, json=body)
            assert_error(refused, 401, None)
            large = await client.post(
                path, json={**body, "user": "x" * 100}, headers={"authorization": "Bearer k"}
            )
            assert_error(large, 413, None, "max_request_bytes")
            ok = await client.post(path, json=body, headers={"authorization": "Bearer k"})
            assert ok.status_code == 200 and ok.headers["x-request-id"]


def test_v2_infer_is_a_lean_route() -> None:
    from hf_runtime.protocols.kserve_v2 import make_app as make_v2_app

    app = make_v2_app(make_fake_registry())
    infer = [r for r in app.routes if getattr(r, "path", "").endswith("/infer")]
    assert infer and all(isinstance(r, LeanRoute) for r in infer)


async def test_a_client_leaving_cancels_the_work_and_answers_499() -> None:
    disconnected = asyncio.Event()
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def work() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    call = asyncio.create_task(cancel_on_disconnect(request, work()))
    await started.wait()
    disconnected.set()
    response = await call
    assert response.status_code == CLIENT_CLOSED
    assert not call.cancelled() and asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_another_cancellation_still_cancels() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    call = asyncio.create_task(cancel_on_disconnect(request, asyncio.sleep(3600)))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_the_work_answers_when_the_client_stays() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def work() -> str:
        return "done"

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    assert await cancel_on_disconnect(request, work()) == "done"
