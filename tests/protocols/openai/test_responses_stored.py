"""The Responses API's other routes in-process with the official `openai` SDK unmodified:
input_items (OpenAI's list shape and paging), cancel (nothing runs in the background), GET's
stream and include, input_tokens, compact (501); the request fields accepted as changing
nothing, vLLM's sampling extensions, and the response store's limits and off switch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from hf_runtime.protocols.openai import make_app
from hf_runtime.protocols.openai.responses_api.store import ResponseStore
from hf_runtime.runtime.server import Runtime
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import ScriptedGenerator
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio


def sdk_for(app: Starlette) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key="x", http_client=http,
                              max_retries=0)  # fmt: skip


@pytest.fixture
async def sdk(root_app: Starlette) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk_for(root_app) as client:
        yield client


async def test_input_items_list_the_conversation_in_openais_list_shape(
    sdk: openai.AsyncOpenAI, client: httpx.AsyncClient
) -> None:
    first = await sdk.responses.create(
        model="gpt", instructions="Sys",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
    )  # fmt: skip
    second = await sdk.responses.create(model="gpt", input="More", previous_response_id=first.id)
    newest_first = await sdk.responses.input_items.list(second.id)
    kinds = [(item.type, getattr(item, "role", None)) for item in newest_first.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert newest_first.data[1].id == first.output[0].id  # the earlier output, as answered
    assert newest_first.data[0].content[0].text == "More"  # type: ignore[union-attr]
    # The SDK pages with `after` (the last id) until has_more is false.
    paged = [item.id async for item in sdk.responses.input_items.list(second.id, limit=1,
                                                                       order="asc")]  # fmt: skip
    assert paged == [item.id for item in reversed(newest_first.data)]
    raw = (await client.get(f"/v1/responses/{second.id}/input_items?limit=2")).json()
    assert raw["object"] == "list" and raw["has_more"] is True
    assert (raw["first_id"], raw["last_id"]) == (raw["data"][0]["id"], raw["data"][1]["id"])
    for query, param in [("limit=0", "limit"), ("limit=x", "limit"), ("order=up", "order"),
                         ("after=nope", "after"), ("include[]=file_search_call.results",
                                                   "include")]:  # fmt: skip
        response = await client.get(f"/v1/responses/{second.id}/input_items?{query}")
        assert_error(response, 400, param)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.input_items.list("resp_missing")


async def test_cancel_get_stream_and_include_are_refused(
    sdk: openai.AsyncOpenAI, client: httpx.AsyncClient
) -> None:
    done = await sdk.responses.create(model="gpt", input="Hi")
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.cancel(done.id)
    assert refused.value.param == "response_id" and "background" in refused.value.message
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.cancel("resp_missing")
    with pytest.raises(openai.BadRequestError) as streamed:
        await sdk.responses.retrieve(done.id, stream=True)
    assert streamed.value.param == "stream"
    with pytest.raises(openai.BadRequestError) as included:
        await sdk.responses.retrieve(done.id, include=["message.output_text.logprobs"])
    assert included.value.param == "include"
    assert (await sdk.responses.retrieve(done.id, stream=False)).id == done.id
    compact = await client.post("/v1/responses/compact", json={"model": "gpt", "input": "x"})
    assert_error(compact, 501, None, "compact")


async def test_input_tokens_count_equals_the_responses_prompt(sdk: openai.AsyncOpenAI) -> None:
    fields: Any = {"model": "gpt", "instructions": "Be brief.", "input": "Hi"}
    response = await sdk.responses.create(**fields)
    counted = await sdk.responses.input_tokens.count(**fields)
    assert counted.object == "response.input_tokens"
    assert response.usage is not None and counted.input_tokens == response.usage.input_tokens
    follow = await sdk.responses.input_tokens.count(model="gpt", previous_response_id=response.id)
    assert follow.input_tokens > 0
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.input_tokens.count(model="gpt", input="x", truncation="auto")
    assert refused.value.param == "truncation"


async def test_fields_that_change_nothing_are_accepted_and_sampling_extensions_apply(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    response = await sdk.responses.create(
        model="gpt", input="Hi", prompt_cache_key="k", safety_identifier="s", service_tier="flex",
        prompt_cache_retention="24h", prompt_cache_options={"ttl": "30m"},
        stream_options={"include_obfuscation": False}, include=[], top_logprobs=0,
        truncation="disabled", background=False, text={"verbosity": "medium"},
        extra_body={"stop": ["zz"], "seed": 7, "top_k": 3},
    )  # fmt: skip
    assert response.status == "completed" and response.service_tier == "default"
    assert response.prompt_cache_key == "k" and response.safety_identifier == "s"
    params = generator.requests[0].params
    assert (params.stop, params.seed, params.top_k) == (["zz"], 7, 3)


async def test_a_store_that_is_off_keeps_nothing(generator: ScriptedGenerator) -> None:
    app = make_app(FakeRegistry([_model(generator)]), ResponseStore(max_entries=0))
    async with sdk_for(Starlette(routes=[Mount("/v1", app)])) as sdk:
        response = await sdk.responses.create(model="gpt", input="Hi")
        assert response.store is False
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.responses.retrieve(response.id)
        assert "store is off" in missing.value.message
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="gpt", input="x", previous_response_id=response.id)
        assert refused.value.param == "previous_response_id"


def _model(generator: ScriptedGenerator) -> Any:
    from tests.protocols.openai.fakes import FakeModel

    return FakeModel("gpt", generator=generator)


@pytest.mark.parametrize(
    ("args", "limits"),
    [
        ({}, (1024, 64 << 20, 3600.0)),
        ({"response_store_max_count": "0", "response_store_max_bytes": "4096",
          "response_store_max_age_s": "60"}, (0, 4096, 60.0)),
    ],
)  # fmt: skip
def test_the_store_limits_are_server_settings(
    args: dict[str, str], limits: tuple[int, int, float]
) -> None:
    runtime = Runtime.from_sources({"model_dir": "/m", **args})
    stores = [getattr(app.state, "response_store", None) for _, app in runtime.apps]
    (store,) = {id(s): s for s in stores if isinstance(s, ResponseStore)}.values()
    assert (store.max_entries, store.max_bytes, store.max_age_s) == limits


async def test_parse_reads_a_json_schema_answer(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        city: str

    generator.scripts = ['{"city": "Rome"}']
    parsed = await sdk.responses.parse(model="gpt", input="x", text_format=City)
    assert parsed.output_parsed == City(city="Rome")
    structured = generator.requests[0].params.structured
    assert structured is not None and structured.kind == "json_schema"
