"""Model lookup (unknown, missing, loading, wrong kind, overloaded) and GET /models."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from hf_runtime.errors import Overloaded
from hf_runtime.protocols.openai import make_app
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import FakeModel, ScriptedGenerator
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio

BODIES: dict[str, dict[str, Any]] = {
    "/completions": {"prompt": "Hi"},
    "/chat/completions": {"messages": [{"role": "user", "content": "Hi"}]},
    "/embeddings": {"input": "Hi"},
}


@pytest.mark.parametrize("route", list(BODIES))
async def test_unknown_model_is_404(client: httpx.AsyncClient, route: str) -> None:
    response = await client.post(f"/v1{route}", json={"model": "nope", **BODIES[route]})
    error = assert_error(response, 404, "model", "Model with name nope does not exist.")
    assert error["type"] == "NotFoundError"


@pytest.mark.parametrize("route", list(BODIES))
async def test_missing_model_needs_a_single_served_model(
    client: httpx.AsyncClient, route: str
) -> None:
    response = await client.post(f"/v1{route}", json=BODIES[route])
    assert_error(response, 400, "model", "model is required when several models are served")


async def test_missing_model_defaults_to_the_only_model() -> None:
    app = make_app(FakeRegistry([FakeModel("solo", generator=ScriptedGenerator())]))
    transport = httpx.ASGITransport(app=Starlette(routes=[Mount("/v1", app)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/v1/completions", json={"prompt": "Hi"})
    assert response.status_code == 200
    assert response.json()["model"] == "solo"


@pytest.mark.parametrize("route", ["/completions", "/chat/completions"])
async def test_loading_model_is_503(client: httpx.AsyncClient, route: str) -> None:
    response = await client.post(f"/v1{route}", json={"model": "loading", **BODIES[route]})
    error = assert_error(response, 503, "model", "Model with name loading is not ready.")
    assert error["type"] == "ServiceUnavailableError"


@pytest.mark.parametrize(
    ("prefix", "route", "model", "message"),
    [
        (
            "/v1",
            "/chat/completions",
            "minilm",
            "Model minilm (text_embedding) does not support chat completions; use /v1/embeddings",
        ),
        (
            "/openai/v1",
            "/completions",
            "minilm",
            "Model minilm (text_embedding) does not support completions; use /openai/v1/embeddings",
        ),
        (
            "/v1",
            "/completions",
            "clf",
            "Model clf (sequence_classification) does not support completions; "
            "use /v1/models/clf:predict (KServe V1) or /v2/models/clf/infer (V2)",
        ),
        (
            "/v1",
            "/embeddings",
            "gpt",
            "Model gpt (text_generation) does not support embeddings; "
            "use /v1/completions or /v1/chat/completions",
        ),
        (
            "/v1",
            "/embeddings",
            "clf",
            "Model clf (sequence_classification) does not support embeddings; use /v1/models/",
        ),
    ],
)
async def test_wrong_kind_of_model_names_the_right_endpoint(
    client: httpx.AsyncClient, prefix: str, route: str, model: str, message: str
) -> None:
    response = await client.post(f"{prefix}{route}", json={"model": model, **BODIES[route]})
    assert_error(response, 400, "model", message)


async def test_engine_overload_is_429_and_aborts_the_other_choices(
    client: httpx.AsyncClient, fake_models: FakeRegistry
) -> None:
    busy = ScriptedGenerator(max_active=1, token_delay=0.01)
    fake_models.models["gpt"] = FakeModel("gpt", generator=busy)
    for stream in (False, True):
        response = await client.post(
            "/v1/completions",
            json={"model": "gpt", "prompt": "Hi", "n": 2, "stream": stream, "ignore_eos": True},
        )
        error = assert_error(response, 429, None, "too many sequences")
        assert error["type"] == "RateLimitError"
    assert len(busy.aborted) == 2 and busy.finished == []  # the admitted ones were stopped
    assert busy.active == 0


async def test_embedding_model_overload_is_429(
    client: httpx.AsyncClient, fake_models: FakeRegistry
) -> None:
    fake_models.models["minilm"].fail_with = Overloaded("queue is full")
    response = await client.post("/v1/embeddings", json={"model": "minilm", "input": "x"})
    assert_error(response, 429, None, "queue is full")


async def test_unexpected_error_is_a_500_without_internals(fake_models: FakeRegistry) -> None:
    class Broken(FakeModel):
        async def embed(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            raise KeyError("secret internals")

    fake_models.models["minilm"] = Broken("minilm", "text_embedding")
    transport = httpx.ASGITransport(app=make_app(fake_models), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/embeddings", json={"model": "minilm", "input": "x"})
    error = assert_error(response, 500, None, "Internal server error: KeyError")
    assert "secret" not in error["message"]


async def test_list_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/openai/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["models"] == ["gpt", "minilm", "clf", "loading"]
    assert [card["id"] for card in body["data"]] == body["models"]
    for card in body["data"]:
        assert set(card) == {"id", "object", "created", "owned_by"}
        assert card["object"] == "model" and isinstance(card["created"], int)


async def test_retrieve_model(client: httpx.AsyncClient) -> None:
    body = (await client.get("/openai/v1/models/gpt")).json()
    assert body == {
        "name": "gpt",
        "ready": True,
        "id": "gpt",
        "object": "model",
        "created": body["created"],
        "owned_by": "hf-runtime",
    }
    loading = await client.get("/openai/v1/models/loading")
    assert loading.status_code == 200 and loading.json()["ready"] is False
    assert_error(await client.get("/openai/v1/models/nope"), 404, "model", "does not exist")


async def test_a_generator_with_defaults_states_them_on_both_prefixes() -> None:
    """What a request that leaves fields unset gets (generation.sampling_defaults,
    default_max_tokens, generation_config.json, merged) and vLLM's max_model_len, on the
    KServe V1 app's /v1/models and the OpenAI app's alike; models without defaults keep
    OpenAI's four fields."""
    from hf_runtime.protocols import kserve_v1

    tuned = ScriptedGenerator(max_model_len=2048)
    tuned.sampling_defaults = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 256}
    registry = FakeRegistry(
        [
            FakeModel("tuned", generator=tuned),
            FakeModel("plain", generator=ScriptedGenerator()),
            FakeModel("minilm", "text_embedding"),
            FakeModel("loading", generator=tuned, ready=False),
        ]
    )
    root = Starlette(
        routes=[Mount("/openai/v1", make_app(registry)), Mount("/v1", kserve_v1.make_app(registry))]
    )
    stated = {"max_model_len": 2048, "sampling_defaults": tuned.sampling_defaults}
    transport = httpx.ASGITransport(app=root)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for prefix in ("/v1", "/openai/v1"):
            cards = {c["id"]: c for c in (await client.get(f"{prefix}/models")).json()["data"]}
            assert {k: cards["tuned"][k] for k in stated} == stated
            for name in ("plain", "minilm", "loading"):
                assert set(cards[name]) == {"id", "object", "created", "owned_by"}
            one = (await client.get(f"{prefix}/models/tuned")).json()
            assert one["ready"] is True and {k: one[k] for k in stated} == stated
