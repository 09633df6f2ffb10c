"""/tokenize and /detokenize in-process on fakes, behind the gateway as the service mounts them:
vLLM's shapes on every prefix (the root, /v1, /openai/v1), and every bad input answered 4xx in
OpenAI's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hf_runtime.model import TextGenerator
from hf_runtime.protocols.gateway import GatewaySettings, Surface, surface_for
from tests.fakes import BOS_ID, CLS_ID, SEP_ID, FakeRegistry, FakeServedModel
from tests.protocols.conftest import make_fake_registry
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

PREFIXES = ["", "/v1", "/openai/v1"]
CHAT = [{"role": "user", "content": "hi"}]
KEY = "tokenize-key-0001"


def client_for(registry: FakeRegistry, **settings: Any) -> httpx.AsyncClient:
    app = make_served_app(registry, GatewaySettings(**settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
async def client(registry: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(registry) as http:
        yield http


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_prompt_round_trips_on_every_prefix(client: httpx.AsyncClient, prefix: str) -> None:
    body = {"model": "gpt", "prompt": "hé", "return_token_strs": True}
    response = await client.post(f"{prefix}/tokenize", json=body)
    assert response.status_code == 200, response.text
    ids = [BOS_ID, *"hé".encode()]
    assert response.json() == {
        "count": len(ids),
        "max_model_len": 256,
        "tokens": ids,
        "token_strs": ["<s>", "h", "Ã", "©"],  # the byte-level fake's convert_ids_to_tokens
    }
    back = await client.post(f"{prefix}/detokenize", json={"model": "gpt", "tokens": ids})
    assert back.status_code == 200 and back.json() == {"prompt": "hé"}


async def test_add_special_tokens_and_token_strs_defaults(client: httpx.AsyncClient) -> None:
    plain = await client.post("/tokenize", json={"model": "gpt", "prompt": "a"})
    assert plain.json()["tokens"] == [BOS_ID, ord("a")] and plain.json()["token_strs"] is None
    bare = {"model": "gpt", "prompt": "a", "add_special_tokens": False}
    assert (await client.post("/tokenize", json=bare)).json()["tokens"] == [ord("a")]
    empty = await client.post("/tokenize", json={"model": "gpt", "prompt": ""})
    assert empty.json()["count"] == 1  # vLLM takes "" too: just the special tokens
    nothing = await client.post("/detokenize", json={"model": "gpt", "tokens": []})
    assert nothing.status_code == 200 and nothing.json() == {"prompt": ""}


async def test_encoder_models_tokenize_too(client: httpx.AsyncClient) -> None:
    for name in ("embed", "clf", "rerank", "ner"):
        response = await client.post("/v1/tokenize", json={"model": name, "prompt": "ab"})
        assert response.status_code == 200, (name, response.text)
        assert response.json()["tokens"] == [CLS_ID, 97, 98, SEP_ID]
        back = await client.post("/detokenize", json={"model": name, "tokens": [CLS_ID, 97]})
        assert back.json() == {"prompt": "[CLS]a"}


async def test_messages_are_rendered_as_chat_completions_renders_them(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    generator = registry.get("gpt").capability(TextGenerator)
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    expected = await generator.render_chat(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a\nb"}]
    )
    response = await client.post("/tokenize", json={"model": "gpt", "messages": messages})
    assert response.status_code == 200, response.text
    assert response.json()["tokens"] == expected  # no special tokens by default
    with_specials = {"model": "gpt", "messages": messages, "add_special_tokens": True}
    assert (await client.post("/tokenize", json=with_specials)).json()["tokens"] == [
        BOS_ID,
        *expected,
    ]
    continued = {
        "model": "gpt",
        "messages": [*CHAT, {"role": "assistant", "content": "Hel"}],
        "add_generation_prompt": False,
        "continue_final_message": True,
    }
    ids = (await client.post("/tokenize", json=continued)).json()["tokens"]
    text = await client.post("/detokenize", json={"model": "gpt", "tokens": ids})
    assert text.json()["prompt"].endswith("<|im_start|>assistant\nHel")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "gpt"}, "prompt", "required"),
        ({"model": "gpt", "prompt": "a", "messages": CHAT}, "messages", "not both"),
        ({"model": "gpt", "messages": []}, "messages", "empty"),
        ({"model": "embed", "messages": CHAT}, "messages", "no chat template"),
        ({"model": "gpt", "messages": [{"role": "robot", "content": "x"}]}, "messages", "role"),
        ({"model": "gpt", "messages": CHAT, "continue_final_message": True},
         "continue_final_message", "cannot both"),
        ({"model": "gpt", "prompt": 7}, "prompt", ""),
        ({"model": "gpt", "prompt": ["a"]}, "prompt", ""),
        ({"model": "gpt", "prompt": "a", "add_special_tokens": "maybe"}, "add_special_tokens", ""),
        ({"prompt": "a"}, "model", "several models"),
    ],
)  # fmt: skip
async def test_bad_tokenize_requests(
    client: httpx.AsyncClient, body: dict[str, Any], param: str, words: str
) -> None:
    for prefix in PREFIXES:
        assert_error(await client.post(f"{prefix}/tokenize", json=body), 400, param, words)


@pytest.mark.parametrize(
    ("tokens", "words"),
    [
        ([1, -1], "non-negative"),
        ([1, 258], "between 0 and"),
        ([2**63], "between 0 and"),
        ([1, 1.5], "integer"),
        ([1, 2.0], "integer"),  # StrictInt: a float is not an id, as in completions' prompt
        (["1"], "integer"),
        ([True], "integer"),
        ([[1]], "integer"),
        ("12", ""),
        (None, ""),
    ],
)
async def test_bad_detokenize_requests(client: httpx.AsyncClient, tokens: Any, words: str) -> None:
    for prefix in PREFIXES:
        response = await client.post(
            f"{prefix}/detokenize", json={"model": "gpt", "tokens": tokens}
        )
        assert_error(response, 400, "tokens", words)
    encoder = await client.post("/detokenize", json={"model": "embed", "tokens": [SEP_ID + 1]})
    assert_error(encoder, 400, "tokens", "outside the vocabulary")


async def test_unknown_loading_and_unserved_models(client: httpx.AsyncClient) -> None:
    for path, body in [("/tokenize", {"prompt": "a"}), ("/detokenize", {"tokens": [1]})]:
        for prefix in PREFIXES:
            missing = await client.post(prefix + path, json={**body, "model": "nope"})
            assert_error(missing, 404, "model", "nope")
    loading = FakeRegistry([FakeServedModel("slow", "text_generation", ready=False)])
    async with client_for(loading) as http:
        for prefix in PREFIXES:
            response = await http.post(f"{prefix}/tokenize", json={"prompt": "a"})
            assert_error(response, 503, "model", "not ready")
            response = await http.post(f"{prefix}/detokenize", json={"tokens": [1]})
            assert_error(response, 503, "model", "not ready")


async def test_one_model_may_go_unnamed() -> None:
    async with client_for(FakeRegistry([FakeServedModel("only", "text_embedding")])) as http:
        response = await http.post("/tokenize", json={"prompt": "a"})
        assert response.status_code == 200 and response.json()["tokens"] == [CLS_ID, 97, SEP_ID]


def test_root_paths_are_openai_surfaces() -> None:
    for path in ("/tokenize", "/detokenize", "/v1/tokenize", "/openai/v1/detokenize"):
        assert surface_for(path) is Surface.OPENAI


async def test_gateway_answers_in_openai_shape_at_the_root(registry: FakeRegistry) -> None:
    async with client_for(registry, api_keys=(KEY,), max_request_bytes=2048) as http:
        refused = await http.post("/tokenize", json={"model": "gpt", "prompt": "a"})
        assert_error(refused, 401, None)
        headers = {"Authorization": f"Bearer {KEY}"}
        ok = await http.post("/detokenize", json={"model": "gpt", "tokens": [97]}, headers=headers)
        assert ok.status_code == 200
        big = {"model": "gpt", "prompt": "a" * 4096}
        assert_error(await http.post("/tokenize", json=big, headers=headers), 413, None)
        bad_json = await http.post("/detokenize", content=b"{", headers=headers)
        assert bad_json.status_code == 400 and set(bad_json.json()["error"]) >= {"param"}


async def test_large_inputs_are_served(client: httpx.AsyncClient) -> None:
    """Near the 8 MiB default body limit: a long text and a long id list (written in a thread)."""
    text = "ab" * 500_000
    response = await client.post("/tokenize", json={"model": "embed", "prompt": text})
    assert response.status_code == 200 and response.json()["count"] == len(text) + 2
    ids = [97] * 1_000_000
    back = await client.post("/detokenize", json={"model": "gpt", "tokens": ids})
    assert back.status_code == 200 and back.json()["prompt"] == "a" * len(ids)


def test_documents_list_the_routes_with_their_errors() -> None:
    from hf_runtime.protocols.mounts import ROOT_APP_TITLE, protocol_apps

    for _, app in protocol_apps(make_fake_registry()):
        document = app.openapi()
        if app.title not in (ROOT_APP_TITLE, "hf-runtime OpenAI-compatible API"):
            assert "/tokenize" not in document["paths"]
            continue
        for path, model in (("/tokenize", "TokenizeResponse"), ("/detokenize", "Detokenize")):
            responses = document["paths"][path]["post"]["responses"]
            # The root /tokenize takes TEI's body too, answered in TEI's errors (424 included).
            shared = app.title == ROOT_APP_TITLE and path == "/tokenize"
            # Never 429 (a tokenizer has no queue), never 501.
            expected = {"200", "400", "401", "404", "413", "500", "503"} | (
                {"424"} if shared else set()
            )
            assert set(responses) == expected, path
            error = responses["404"]["content"]["application/json"]["schema"]
            assert error["title"] == ("OpenAIOrTEIError" if shared else "OpenAIError")
            ok = responses["200"]["content"]["application/json"]["schema"]["$ref"]
            assert ok.split("/")[-1].startswith(model)
