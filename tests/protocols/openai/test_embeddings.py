"""POST /embeddings."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from hf_runtime.protocols.openai import make_app
from hf_runtime.types import Truncation
from tests.fakes import FakeRegistry, FakeServedModel
from tests.protocols.openai.fakes import EMBEDDING_DIM, fake_embedding
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio


async def embed(client: httpx.AsyncClient, **fields: object) -> dict:
    response = await client.post("/v1/embeddings", json={"model": "minilm", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def test_float_embeddings_body(client: httpx.AsyncClient) -> None:
    body = await embed(client, input=["ab", "c"])
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": fake_embedding([97, 98])},
            {"object": "embedding", "index": 1, "embedding": fake_embedding([99])},
        ],
        "model": "minilm",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},  # the model's count: (2+2) + (1+2)
    }


async def test_single_string_and_default_format(client: httpx.AsyncClient) -> None:
    body = await embed(client, input="ab", user="u", encoding_format=None)
    assert [d["embedding"] for d in body["data"]] == [fake_embedding([97, 98])]


async def test_base64_is_little_endian_float32(client: httpx.AsyncClient) -> None:
    body = await embed(client, input=["ab"], encoding_format="base64")
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == 4 * EMBEDDING_DIM
    decoded = np.frombuffer(raw, dtype="<f4")
    np.testing.assert_allclose(decoded, fake_embedding([97, 98]), rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [([5, 6], [[5, 6]]), ([[5, 6], [7]], [[5, 6], [7]]), (["a", "b"], ["a", "b"])],
)
async def test_inputs_reach_the_model(
    client: httpx.AsyncClient, fake_models: FakeRegistry, value: object, expected: list
) -> None:
    await embed(client, input=value)
    assert fake_models.models["minilm"].embed_calls == [(expected, None)]


async def test_dimensions_are_passed_and_checked(
    client: httpx.AsyncClient, fake_models: FakeRegistry
) -> None:
    body = await embed(client, input="ab", dimensions=3)
    assert fake_models.models["minilm"].embed_calls == [(["ab"], 3)]
    vector = body["data"][0]["embedding"]
    assert len(vector) == 3
    assert np.linalg.norm(vector) == pytest.approx(1.0)
    # This fake ignores a too-large request; the API layer still answers 400.
    response = await client.post(
        "/v1/embeddings", json={"model": "minilm", "input": "ab", "dimensions": EMBEDDING_DIM + 1}
    )
    assert_error(response, 400, "dimensions", f"embedding size ({EMBEDDING_DIM})")


async def test_truncation_side_alone_is_the_models_rule_from_that_side() -> None:
    """vLLM's truncation_side without truncate_prompt_tokens: TEI's direction (the model's
    own auto_truncate rule, cutting from that side); neither field: the model's rule as is."""
    model = FakeServedModel("emb", "text_embedding")
    app = Starlette(routes=[Mount("/v1", make_app(FakeRegistry([model])))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for side in ("left", None):
            body = {"input": "ab", **({"truncation_side": side} if side else {})}
            assert (await client.post("/v1/embeddings", json=body)).status_code == 200
    assert model.embed_options == [(Truncation(side="left"), None), (None, None)]
