"""The OpenAPI documents, and schemathesis fuzzing of every protocol through them.

A real uvicorn server serves `make_served_app` (every app behind the Gateway, as BentoML mounts
them) over the fake registry; each app's document is fetched from it and every operation is
fuzzed at every prefix the document names (see tests/fuzzing.py for the checks).
Each server is fuzzed through the published documents (schema-valid and schema-breaking
requests), and the fake models' server also with requests the handlers accept
(tests/fuzz_valid.py), which reach the models. `pytest -s` prints how many requests each run
sent; FUZZ_EXAMPLES=200 fuzzes deeper.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis

from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.protocols.mounts import OPENAPI_DOCUMENTS, protocol_apps
from tests.fakes import FAKE_PROMPTS, FakeRegistry, FakeServedModel
from tests.fuzz_valid import Served
from tests.fuzzing import FuzzRun, examples
from tests.protocols.conftest import LiveServer, make_fake_registry
from tests.served_app import make_served_app

API_KEY = "fuzz-test-key-0123"
TITLES = [
    "KServe V1",
    "Open Inference Protocol V2",
    "hf-runtime OpenAI-compatible API",
    "hf-runtime rerank, score and tokenize (root and /v2 paths)",
    "hf-runtime Anthropic Messages API",
    "hf-runtime text-embeddings-inference (TEI) API",
]


def served_app_server(registry: FakeRegistry, settings: GatewaySettings) -> LiveServer:
    """`make_served_app` (every protocol behind the gateway) on a live uvicorn server."""
    return LiveServer(registry, make_served_app(registry, settings))


# ---------------------------------------------------------------- the documents


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """Title -> document, as protocol_apps builds them (limit 12345 bytes)."""
    apps = protocol_apps(make_fake_registry(), max_request_bytes=12345)
    return {app.title: app.openapi() for _, app in apps}


def responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"][path][method]["responses"]


def test_documents_state_the_limits_and_never_422(documents: dict[str, Any]) -> None:
    assert sorted(documents) == sorted(TITLES)
    for document in documents.values():
        assert "12345 bytes (max_request_bytes)" in document["info"]["description"]
        assert document["info"]["x-limits"]["max_request_bytes"] == 12345
        assert "'422'" not in str(document) and "HTTPValidationError" not in str(document)


def test_documents_are_valid_openapi(documents: dict[str, Any]) -> None:
    for document in documents.values():
        schemathesis.openapi.from_dict(document).validate()


def test_documents_name_every_mount_as_a_server() -> None:
    mounts = protocol_apps(make_fake_registry())
    for path, app in mounts:
        servers = [s["url"] for s in app.openapi().get("servers", [])]
        assert sorted(servers) == sorted(p for p, a in mounts if a is app and p != "/"), path
    openai = next(app for path, app in mounts if path == "/openai/v1")
    # First the prefix its document is served under (its /v1 one is shadowed by KServe V1's).
    assert openai.openapi()["servers"][0]["url"] == "/openai/v1"


def test_every_operation_lists_the_gateway_errors_in_its_shape(
    documents: dict[str, Any],
) -> None:
    for title, document in documents.items():
        for path, item in document["paths"].items():
            for method, operation in item.items():
                codes = set(operation["responses"])
                assert {"400", "413", "500"} <= codes, (method, path)
                probe = path.startswith("/v2/health/")
                assert ("401" in codes) is not probe, (method, path)
                error = operation["responses"]["400"]["content"]["application/json"]["schema"]
                if title == TITLES[4]:  # the Anthropic Messages API's own shape
                    expected = "AnthropicError"
                elif title == TITLES[5]:  # TEI's own shape
                    expected = "TEIError"
                elif title == TITLES[3] and path in ("/rerank", "/tokenize"):
                    expected = "OpenAIOrTEIError"  # vLLM's bodies and TEI's share these
                elif title == TITLES[2] and path.startswith("/models"):
                    expected = "KServeOrOpenAIError"
                elif title in TITLES[2:]:
                    expected = "OpenAIError"
                else:
                    expected = "KServeError"
                assert error["title"] == expected, (method, path)


def test_route_specific_statuses(documents: dict[str, Any]) -> None:
    v1, v2, openai, root = (documents[t] for t in TITLES[:4])
    explain = responses(v1, "/models/{name}:explain", "post")
    assert "501" in explain and "200" not in explain and "429" not in explain
    predict = responses(v1, "/models/{name}:predict", "post")
    assert {"404", "429", "503"} <= set(predict) and "501" not in predict
    assert "501" in responses(v2, "/v2/models/{name}/versions/{model_version}/infer", "post")
    assert "501" not in responses(v2, "/v2/models/{name}/infer", "post")
    ready = responses(v2, "/v2/health/ready", "get")["503"]["content"]["application/json"]
    assert ready["schema"]["title"] == "ReadyState"
    assert "503" not in responses(v2, "/v2/health/live", "get")
    infer = responses(v2, "/v2/models/{name}/infer", "post")["200"]["content"]
    assert set(infer) == {"application/json", "application/octet-stream"}
    for path in ("/chat/completions", "/completions"):
        ok = responses(openai, path, "post")["200"]["content"]
        assert set(ok) == {"application/json", "text/event-stream"}
    assert set(responses(openai, "/embeddings", "post")["200"]["content"]) == {"application/json"}
    for document, path in [(openai, "/rerank"), (openai, "/score"), (root, "/rerank")]:
        scoring = responses(document, path, "post")
        assert {"400", "401", "404", "413", "429", "500", "503"} <= set(scoring), path
        assert "501" not in scoring
    assert set(root["paths"]) == {
        *("/rerank", "/v2/rerank", "/score", "/tokenize", "/detokenize"),
        *("/classify", "/pooling"),  # vLLM's pooling API: root only
    }
    for document in (openai, root):
        for path in ("/tokenize", "/detokenize"):
            tokenizing = responses(document, path, "post")
            assert {"400", "401", "404", "413", "500", "503"} <= set(tokenizing), path
            assert "429" not in tokenizing and "501" not in tokenizing  # no queue, no stub
    ranked = responses(root, "/v2/rerank", "post")["200"]["content"]["application/json"]
    assert ranked["schema"]["$ref"].endswith("/RerankResponse")


def test_self_parsed_bodies_are_documented(documents: dict[str, Any]) -> None:
    predict = documents[TITLES[0]]["paths"]["/models/{name}:predict"]["post"]["requestBody"]
    assert predict["content"]["application/json"]["schema"]["required"] == ["instances"]
    infer = documents[TITLES[1]]["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    schema = infer["content"]["application/json"]["schema"]
    assert schema["required"] == ["inputs"]
    assert schema["properties"]["inputs"]["items"]["required"] == ["name", "shape", "datatype"]
    assert "$ref" not in str(schema)  # inlined: BentoML's /docs.json has no component for it


def test_documents_are_served_under_their_mounts() -> None:
    with served_app_server(make_fake_registry(), GatewaySettings()) as server:
        for document, title in zip(OPENAPI_DOCUMENTS, TITLES, strict=True):
            response = requests.get(server.base_url + document, timeout=10)
            assert response.status_code == 200, document
            assert response.json()["info"]["title"] == title
        # The V2 document moved off the root, where it would pass for the whole service's.
        assert requests.get(server.base_url + "/openapi.json", timeout=10).status_code == 404


# ---------------------------------------------------------------- fuzzing


@pytest.mark.slow
def test_fuzz_every_protocol() -> None:
    registry = make_fake_registry()
    # A reasoning model: its thinking is split off on chat, Responses and Messages, whatever
    # else the request asks (n, stops, logprobs, tools, formats, streams).
    generator = registry.get("gpt")._generator
    generator.reasoning_parser = "deepseek_r1"
    generator.reply = "Hm.</think>" + generator.reply
    served = Served(
        registry.names(),
        generator="gpt",
        embedder="embed",
        dimensions=8,
        scorer="rerank",
        prompt_names=tuple(FAKE_PROMPTS),
        classifier="clf",
    )
    with served_app_server(registry, GatewaySettings()) as server:
        published = FuzzRun(server.base_url, {}, registry.names())
        valid = FuzzRun(server.base_url, {}, registry.names())
        for document in OPENAPI_DOCUMENTS:
            published.fuzz(document, examples(50))
            valid.fuzz(document, examples(100), valid_for=served)
    print("\n" + published.summary("published documents"))
    print(valid.summary("requests the handlers accept"))
    assert published.statuses[200] > 0
    # Most valid requests reach a model: completions, chat (streamed too), embeddings, infer,
    # rerank and score (on the cross-encoder and the embedding model alike).
    assert valid.statuses[200] > valid.sent // 2
    assert registry.get("rerank").scorer.calls and registry.get("embed").scorer.calls


@pytest.mark.slow
def test_fuzz_a_sparse_embedding_model() -> None:
    """A SPLADE model (and a dense one beside it) through every protocol: its sparse and dense
    encodings, V1/V2 predictions, and the routes it refuses."""
    registry = FakeRegistry(
        [FakeServedModel("splade", "sparse_embedding"), FakeServedModel("embed", "text_embedding")]
    )
    served = Served(
        registry.names(),
        embedder="embed",
        prompt_names=tuple(FAKE_PROMPTS),
        sparse_embedder="splade",
    )
    with served_app_server(registry, GatewaySettings()) as server:
        valid = FuzzRun(server.base_url, {}, registry.names())
        for document in OPENAPI_DOCUMENTS:
            valid.fuzz(document, examples(15), valid_for=served)
    print("\n" + valid.summary("a sparse embedding model"))
    sparse = registry.get("splade").sparse
    assert valid.statuses[200] > 0 and sparse is not None and sparse.calls


@pytest.mark.slow
def test_fuzz_while_a_model_loads() -> None:
    """Its routes, and /v2/health/ready, answer their documented 503; nothing else is 5xx."""
    loading = FakeServedModel("loading", ready=False)
    registry = FakeRegistry(
        [loading, FakeServedModel("clf"), FakeServedModel("gpt", "text_generation")]
    )
    with served_app_server(registry, GatewaySettings()) as server:
        run = FuzzRun(server.base_url, {}, ["loading"], allowed_5xx=frozenset({501, 503}))
        for document in OPENAPI_DOCUMENTS:
            run.fuzz(document, examples(5))
    print("\n" + run.summary("a model loading"))
    assert run.statuses[503] > 0


@pytest.mark.slow
def test_fuzz_every_protocol_with_api_key() -> None:
    names = make_fake_registry().names()
    # A small body limit too, so that some requests get the Gateway's documented 413.
    settings = GatewaySettings(api_keys=(API_KEY,), max_request_bytes=300)
    with served_app_server(make_fake_registry(), settings) as server:
        keyed = FuzzRun(server.base_url, {"Authorization": f"Bearer {API_KEY}"}, names)
        for document in OPENAPI_DOCUMENTS:
            keyed.fuzz(document, examples(20))
        # Without the key every protocol route answers its documented 401; probes stay open.
        keyless = FuzzRun(server.base_url, {}, names, schema_headers=keyed.headers)
        for document in OPENAPI_DOCUMENTS:
            keyless.fuzz(document, 4, expect=lambda status: status in (200, 401))
    print("\n" + keyed.summary("API key sent") + "\n" + keyless.summary("without the key"))
    assert keyed.statuses[200] > 0 and keyed.statuses[401] == 0
    assert keyless.statuses[401] > 0


def test_model_repository_and_lora_routes_are_documented(documents: dict[str, Any]) -> None:
    """The V2 repository routes and vLLM's LoRA routes are in the documents (so every fuzz run
    above sends them both valid and broken bodies), with the errors they can answer."""
    v2, openai = documents[TITLES[1]], documents[TITLES[2]]
    for path in (
        "/v2/repository/index",
        "/v2/repository/models/{name}/load",
        "/v2/repository/models/{name}/unload",
    ):
        statuses = set(responses(v2, path, "post"))
        assert {"200", "400", "401", "413", "500", "503"} <= statuses, path
        assert "429" not in statuses  # no model runs
        assert "requestBody" in v2["paths"][path]["post"], path
    assert "404" in responses(v2, "/v2/repository/models/{name}/load", "post")
    for path in ("/load_lora_adapter", "/unload_lora_adapter"):
        statuses = set(responses(openai, path, "post"))
        assert {"200", "400", "401", "404", "500", "503"} <= statuses and "429" not in statuses
