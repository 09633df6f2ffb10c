"""vLLM's /classify and /pooling on the tiny models (huggingface backend), in-process behind the
gateway: values against transformers, shapes against vLLM 0.32's own JSON Schemas
(tests/protocols/openai/schemas/vllm_pooling.json, written by generate_vllm_pooling.py in that
folder from vLLM's pydantic models), and every refusal in vLLM's error shape."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
import transformers
from starlette.testclient import TestClient

from hf_runtime.errors import Overloaded
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.fakes import FakeRegistry, FakeServedModel
from tests.loading import load_encoder_model
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

SCHEMAS = json.loads((Path(__file__).parent / "schemas" / "vllm_pooling.json").read_text())
TEXTS = ["I love this movie", "a terrible, boring film", "paris is the capital of france"]


def vllm_shape(body: dict[str, Any], name: str) -> None:
    """`body` validates against vLLM's schema `name`, and has exactly its fields (objects and
    data items), as vLLM's model_dump writes them."""
    schema = SCHEMAS["schemas"][name]
    jsonschema.validate(body, schema)
    assert set(body) == set(schema["properties"]), body.keys()
    item = schema["$defs"][schema["properties"]["data"]["items"]["$ref"].split("/")[-1]]
    for entry in body["data"]:
        assert set(entry) == set(item["properties"]), entry.keys()
    usage = schema["$defs"]["UsageInfo"]["properties"]
    assert set(body["usage"]) == set(usage)


@pytest.fixture(scope="module")
def client(tiny_models: dict[str, Path]) -> Iterator[TestClient]:
    specs = [
        ("cls", "bert-seq-cls", Task.sequence_classification, {}),
        ("cls-probs", "bert-seq-cls", Task.sequence_classification, {"return_probabilities": True}),
        ("cross", "bert-cross-encoder", Task.rerank, {}),
        ("embed", "bert-embed", Task.text_embedding, {}),
    ]

    async def load() -> list[Any]:
        return [
            await load_encoder_model(
                model_config(tiny_models[folder], model_name=name, **flags),
                source_for(tiny_models[folder]),
                task,
            )
            for name, folder, task, flags in specs
        ]

    models = asyncio.run(load())
    registry = FakeRegistry([*models, FakeServedModel("gpt", "text_generation")])
    with TestClient(make_served_app(registry), raise_server_exceptions=False) as test_client:
        yield test_client
    for model in models:
        asyncio.run(model.aclose())


def hf_logits(folder: Path, texts: list[str], **tokenizer_args: Any) -> torch.Tensor:
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, return_tensors="pt", **tokenizer_args)
        return model(**batch).logits


def post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- /classify


def test_classify_is_softmax_of_the_logits_with_labels(client, tiny_models) -> None:
    body = post(client, "/classify", model="cls", input=TEXTS)
    vllm_shape(body, "ClassificationResponse")
    assert body["id"].startswith("classify-") and body["object"] == "list"
    assert body["model"] == "cls"
    probs = torch.softmax(hf_logits(tiny_models["bert-seq-cls"], TEXTS), dim=-1).numpy()
    for i, entry in enumerate(body["data"]):
        assert entry["index"] == i and entry["num_classes"] == 2
        np.testing.assert_allclose(entry["probs"], probs[i], atol=1e-5)
        assert entry["label"] == ["NEGATIVE", "POSITIVE"][int(probs[i].argmax())]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models["bert-seq-cls"])
    tokens = sum(len(ids) for ids in tokenizer(TEXTS)["input_ids"])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == tokens


def test_classify_equals_kserve_v1_probabilities(client) -> None:
    """The V1 predict probabilities (KServe's, rounded to 4 places) are /classify's."""
    v1 = client.post("/v1/models/cls-probs:predict", json={"instances": TEXTS}).json()
    classified = post(client, "/classify", model="cls-probs", input=TEXTS)["data"]
    for predicted, entry in zip(v1["predictions"], classified, strict=True):
        assert [predicted[str(j)] for j in range(2)] == [round(p, 4) for p in entry["probs"]]


def test_classify_use_activation_false_gives_the_logits(client, tiny_models) -> None:
    body = post(client, "/classify", model="cls", input=TEXTS, use_activation=False)
    logits = hf_logits(tiny_models["bert-seq-cls"], TEXTS).numpy()
    np.testing.assert_allclose([e["probs"] for e in body["data"]], logits, atol=1e-5)


def test_a_cross_encoder_classifies_with_its_rerank_sigmoid(client, tiny_models) -> None:
    body = post(client, "/classify", model="cross", input=TEXTS)
    scores = torch.sigmoid(hf_logits(tiny_models["bert-cross-encoder"], TEXTS)).numpy()
    assert all(e["num_classes"] == 1 and e["label"] == "LABEL_0" for e in body["data"])
    np.testing.assert_allclose([e["probs"] for e in body["data"]], scores, atol=1e-5)
    # /score's pair scores come from the same head and activation.
    pair = post(client, "/score", model="cross", text_1=TEXTS[0], text_2=TEXTS[1])
    logit = hf_logits(tiny_models["bert-cross-encoder"], [TEXTS[0]], text_pair=[TEXTS[1]])
    assert pair["data"][0]["score"] == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)


def test_classify_token_ids_equal_the_text(client, tiny_models) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models["bert-seq-cls"])
    ids = tokenizer(TEXTS[0])["input_ids"]
    by_text = post(client, "/classify", model="cls", input=TEXTS[0])["data"][0]
    by_ids = post(client, "/classify", model="cls", input=ids)["data"][0]
    many = post(client, "/classify", model="cls", input=[ids, ids])["data"]
    assert by_ids["probs"] == pytest.approx(by_text["probs"], abs=1e-6)
    assert [e["index"] for e in many] == [0, 1]


def test_truncate_prompt_tokens_as_vllm(client, tiny_models) -> None:
    """Without a side the tokenizer truncates (special tokens kept); with one the ids are
    sliced, as vLLM does."""
    folder = tiny_models["bert-seq-cls"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    text = TEXTS[2]
    full = tokenizer(text)["input_ids"]
    cases = {
        None: tokenizer(text, truncation=True, max_length=5)["input_ids"],
        "left": full[-5:],
        "right": full[:5],
    }
    for side, ids in cases.items():
        extra = {} if side is None else {"truncation_side": side}
        body = post(client, "/classify", model="cls", input=text, truncate_prompt_tokens=5, **extra)
        with torch.no_grad():
            expected = torch.softmax(model(torch.tensor([ids])).logits, -1)[0].numpy()
        np.testing.assert_allclose(body["data"][0]["probs"], expected, atol=1e-5)
        assert body["usage"]["prompt_tokens"] == 5
    whole = post(client, "/classify", model="cls", input=text, truncate_prompt_tokens=-1)
    assert whole["usage"]["prompt_tokens"] == len(full)


def test_request_id_names_the_response(client) -> None:
    body = post(client, "/classify", model="cls", input="a", request_id="abc")
    assert body["id"] == "classify-abc"
    response = client.post(
        "/pooling", json={"model": "cls", "input": "a"}, headers={"X-Request-Id": "h1"}
    )
    assert response.json()["id"] == "pooling-h1"


# ---------------------------------------------------------------- /pooling


def test_pooling_an_embedding_model_equals_v1_embeddings(client) -> None:
    body = post(client, "/pooling", model="embed", input=TEXTS)
    vllm_shape(body, "PoolingResponse")
    assert body["id"].startswith("pooling-") and body["model"] == "embed"
    embeddings = post(client, "/v1/embeddings", model="embed", input=TEXTS)
    assert [e["object"] for e in body["data"]] == ["pooling"] * 3
    assert [e["data"] for e in body["data"]] == [e["embedding"] for e in embeddings["data"]]
    assert body["usage"]["prompt_tokens"] == embeddings["usage"]["prompt_tokens"]
    named = post(client, "/pooling", model="embed", input=TEXTS, task="embed")
    assert named["data"] == body["data"]
    raw = post(client, "/pooling", model="embed", input=TEXTS[:1], use_activation=False)
    vector = np.asarray(raw["data"][0]["data"])
    assert abs(np.linalg.norm(vector) - 1) > 1e-3  # not normalised
    np.testing.assert_allclose(vector / np.linalg.norm(vector), body["data"][0]["data"], atol=1e-6)


def test_v1_embeddings_truncate_prompt_tokens_as_vllm(client, tiny_models) -> None:
    """/v1/embeddings takes vLLM's truncate_prompt_tokens: the vector of the cut token ids
    (the tokenizer's truncation without a side, the ids sliced with one), /pooling's vector
    for the same fields; with dimensions, that vector's renormalised prefix."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models["bert-embed"])
    text = TEXTS[2]
    full = tokenizer(text)["input_ids"]
    cases = {
        None: tokenizer(text, truncation=True, max_length=5)["input_ids"],
        "left": full[-5:],
        "right": full[:5],
    }
    whole = post(client, "/v1/embeddings", model="embed", input=text)["data"][0]["embedding"]
    for side, ids in cases.items():
        extra = {} if side is None else {"truncation_side": side}
        fields = {"model": "embed", "input": text, "truncate_prompt_tokens": 5, **extra}
        body = post(client, "/v1/embeddings", **fields)
        vector = body["data"][0]["embedding"]
        assert body["usage"]["prompt_tokens"] == 5 and body["object"] == "list"
        by_ids = post(client, "/v1/embeddings", model="embed", input=ids)
        np.testing.assert_allclose(vector, by_ids["data"][0]["embedding"], atol=1e-6)
        assert vector == post(client, "/pooling", **fields)["data"][0]["data"]
        assert not np.allclose(vector, whole, atol=1e-3)
        short = post(client, "/v1/embeddings", dimensions=4, **fields)["data"][0]["embedding"]
        np.testing.assert_allclose(short, vector[:4] / np.linalg.norm(vector[:4]), atol=1e-6)
    untouched = post(client, "/v1/embeddings", model="embed", input=text, truncate_prompt_tokens=-1)
    np.testing.assert_allclose(untouched["data"][0]["embedding"], whole, atol=1e-6)
    assert untouched["usage"]["prompt_tokens"] == len(full)


@pytest.mark.parametrize(
    ("body", "param", "contains"),
    [
        ({"truncate_prompt_tokens": 10**6}, "truncate_prompt_tokens", "cannot be greater than"),
        ({"truncate_prompt_tokens": -2}, "truncate_prompt_tokens", "must be -1"),
        ({"truncate_prompt_tokens": 0}, "truncate_prompt_tokens", "must be -1"),
        ({"truncate_prompt_tokens": "all"}, "truncate_prompt_tokens", ""),
        ({"truncation_side": "middle"}, "truncation_side", ""),
        ({"truncate_prompt_tokens": 2, "encoding_format": "sparse"}, "truncate_prompt_tokens", ""),
        ({"truncate_prompt_tokens": 2, "dimensions": 10**4}, "dimensions", ""),
    ],
)
def test_v1_embeddings_refuses_bad_truncation(client, body, param, contains) -> None:
    response = client.post("/v1/embeddings", json={"model": "embed", "input": "a b c", **body})
    assert_error(response, 400, param, contains)


@pytest.mark.parametrize(
    ("dtype", "endianness", "numpy_type", "atol"),
    [
        ("float32", "little", "<f4", 0),
        ("float32", "big", ">f4", 0),
        ("float16", "native", "=f2", 1e-3),
        ("bfloat16", "little", None, 1e-2),
    ],
)
def test_pooling_base64(client, dtype, endianness, numpy_type, atol) -> None:
    floats = post(client, "/pooling", model="embed", input=TEXTS[:2])["data"]
    encoded = post(
        client, "/pooling", model="embed", input=TEXTS[:2], encoding_format="base64",
        embed_dtype=dtype, endianness=endianness,
    )  # fmt: skip
    vllm_shape(encoded, "PoolingResponse")
    for plain, entry in zip(floats, encoded["data"], strict=True):
        raw = base64.b64decode(entry["data"])
        if numpy_type is None:  # bfloat16: the top half of a float32
            halves = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            values = halves.view(np.float32)
        else:
            values = np.frombuffer(raw, numpy_type)
        np.testing.assert_allclose(values, plain["data"], atol=atol, rtol=atol)


def test_pooling_a_classifier_returns_its_classify_probs(client) -> None:
    pooled = post(client, "/pooling", model="cls", input=TEXTS, task="classify")
    vllm_shape(pooled, "PoolingResponse")
    classified = post(client, "/classify", model="cls", input=TEXTS)
    assert [e["data"] for e in pooled["data"]] == [e["probs"] for e in classified["data"]]


def test_the_root_document_lists_the_routes_with_their_errors(client) -> None:
    document = client.get("/scoring/openapi.json").json()
    for path in ("/classify", "/pooling"):
        responses = document["paths"][path]["post"]["responses"]
        assert {"200", "400", "401", "404", "413", "429", "500", "503"} <= set(responses)


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("path", "body", "param", "contains"),
    [
        ("/classify", {"model": "embed", "input": "a"}, "model", "use /pooling"),
        ("/classify", {"model": "gpt", "input": "a"}, "model", "does not support classification"),
        ("/pooling", {"model": "gpt", "input": "a"}, "model", "does not support pooling"),
        ("/classify", {"model": "cls"}, "input", "required"),
        ("/classify", {"model": "cls", "input": []}, "input", "non-empty"),
        ("/classify", {"model": "cls", "input": [1, "a"]}, "input", ""),
        ("/classify", {"model": "cls", "input": [[]]}, "input", "non-empty"),
        ("/classify", {"model": "cls", "input": [10**9]}, "input", "not a token id"),
        ("/classify", {"model": "cls", "input": [[1] * 5000]}, "input", "at most"),
        ("/classify", {"model": "cls", "input": "a", "normalize": True}, "normalize", "removed"),
        (
            "/classify",
            {"model": "cls", "messages": [{"role": "user", "content": "a"}]},
            "messages",
            "chat template",
        ),
        ("/classify", {"model": "cls", "input": "a", "priority": 1}, "priority", "Priority"),
        ("/classify", {"model": "cls", "input": "a", "padding": "max_length"}, "padding", ""),
        (
            "/classify",
            {"model": "cls", "input": "a", "mm_processor_kwargs": {}},
            "mm_processor_kwargs",
            "",
        ),
        (
            "/classify",
            {"model": "cls", "input": "a", "truncate_prompt_tokens": 0},
            "truncate_prompt_tokens",
            "at least 1",
        ),
        (
            "/classify",
            {"model": "cls", "input": "a", "truncate_prompt_tokens": -2},
            "truncate_prompt_tokens",
            "",
        ),
        (
            "/classify",
            {"model": "cls", "input": "a", "truncate_prompt_tokens": 10**6},
            "truncate_prompt_tokens",
            "cannot be greater than max_model_len",
        ),
        (
            "/classify",
            {"model": "cls", "input": "a", "truncation_side": "middle"},
            "truncation_side",
            "",
        ),
        (
            "/pooling",
            {"model": "embed", "input": "a", "dimensions": 4},
            "dimensions",
            "not supported",
        ),
        (
            "/pooling",
            {"model": "embed", "input": "a", "encoding_format": "bytes"},
            "encoding_format",
            "binary",
        ),
        (
            "/pooling",
            {"model": "embed", "input": "a", "embed_dtype": "fp8_e4m3"},
            "embed_dtype",
            "",
        ),
        ("/pooling", {"model": "embed", "input": "a", "endianness": "middle"}, "endianness", ""),
        (
            "/pooling",
            {"model": "embed", "input": "a", "task": "classify"},
            "task",
            "Unsupported task: 'classify'",
        ),
        ("/pooling", {"model": "embed", "input": "a", "task": "score"}, "task", "was removed"),
        ("/pooling", {"model": "embed", "input": "a", "task": "bogus"}, "task", ""),
        ("/pooling", {"model": "embed", "data": {"x": 1}}, "task", "IOProcessor"),
    ],
)
def test_bad_requests_are_400_in_vllms_shape(client, path, body, param, contains) -> None:
    assert_error(client.post(path, json=body), 400, param, contains)


def test_unknown_model_and_unserved_paths(client) -> None:
    assert_error(client.post("/classify", json={"model": "nope", "input": "a"}), 404, "model")
    for path in ("/v1/classify", "/v1/pooling", "/openai/v1/pooling"):  # vLLM: root only
        assert client.post(path, json={"model": "cls", "input": "a"}).status_code == 404
    response = client.post(
        "/pooling", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 400, None, "Invalid JSON")
    jsonschema.validate(response.json(), SCHEMAS["schemas"]["ErrorResponse"])


def test_a_request_naming_no_model_goes_to_the_one_that_can_answer_it() -> None:
    """vLLM serves one model, so its clients name none: that model answers; with several, the
    only one capable of the request does (a loading one is no candidate), else a 400 names
    the choices."""
    served = [
        FakeServedModel("gpt", "text_generation"),
        FakeServedModel("embed", "text_embedding"),
        FakeServedModel("sst", "sequence_classification"),
        FakeServedModel("sst-next", "sequence_classification", ready=False),
    ]
    with TestClient(make_served_app(FakeRegistry(served))) as client:
        assert client.post("/classify", json={"input": "a"}).json()["model"] == "sst"
        for task, model in (("embed", "embed"), ("classify", "sst")):
            response = client.post("/pooling", json={"input": "a", "task": task})
            assert response.json()["model"] == model, response.text
        response = client.post("/pooling", json={"input": "a"})  # two pooling models
        assert_error(response, 400, "model", "one of: embed, sst")
    with TestClient(make_served_app(FakeRegistry(served[:2]))) as client:
        response = client.post("/classify", json={"input": "a"})  # no classifier: every model
        assert_error(response, 400, "model", "one of: gpt, embed")
        assert client.post("/pooling", json={"input": "a"}).json()["model"] == "embed"
    with TestClient(make_served_app(FakeRegistry(served[1:2]))) as client:
        response = client.post("/classify", json={"input": "a"})  # vLLM's: its model refuses
        assert_error(response, 400, "model", "Model embed (text_embedding) does not support")


def request_fields(name: str) -> set[str]:
    """Every field of vLLM's request `name` (each shape of its union)."""
    schema = SCHEMAS["schemas"][name]
    shapes = [schema["$defs"][s["$ref"].split("/")[-1]] for s in schema["anyOf"]]
    return {field for shape in shapes for field in shape["properties"]}


@pytest.mark.parametrize(
    ("name", "ours"),
    [("ClassificationRequest", "ClassificationRequest"), ("PoolingRequest", "PoolingRequest")],
)
def test_every_vllm_request_field_is_declared(name: str, ours: str) -> None:
    """None of vLLM's fields is ignored as unknown: each is served or refused by name (a
    plugin's `data` is refused by name too)."""
    from hf_runtime.protocols.openai import pooling_schemas

    declared = set(getattr(pooling_schemas, ours).model_fields)
    assert request_fields(name) - {"data"} <= declared


def test_the_bodies_sent_here_are_vllm_requests() -> None:
    for body in (
        {"model": "cls", "input": TEXTS, "truncate_prompt_tokens": 5, "truncation_side": "left"},
        {"model": "cls", "input": [[1, 2], [3]], "use_activation": False, "request_id": "abc"},
    ):
        jsonschema.validate(body, SCHEMAS["schemas"]["ClassificationRequest"])
    body = {"input": "a", "encoding_format": "base64", "embed_dtype": "bfloat16", "task": "embed"}
    jsonschema.validate(body, SCHEMAS["schemas"]["PoolingRequest"])


# ---------------------------------------------------------------- the gateway (fake models)


def test_the_gateway_keys_drain_and_limits_cover_the_pooling_routes() -> None:
    from hf_runtime.protocols.gateway import GatewaySettings, Surface, surface_for
    from tests.protocols.conftest import make_fake_registry

    key, body = "pooling-test-key-01", {"model": "clf", "input": ["a", "bb"]}
    assert surface_for("/classify") is surface_for("/pooling") is Surface.OPENAI
    registry = make_fake_registry()
    with TestClient(make_served_app(registry, GatewaySettings(api_keys=(key,)))) as client:
        for path in ("/classify", "/pooling"):
            assert_error(client.post(path, json=body), 401, None, "API key")
        keyed = client.post("/classify", json=body, headers={"Authorization": f"Bearer {key}"})
        assert keyed.status_code == 200 and keyed.json()["data"][1]["label"] == "NEGATIVE"
    draining = GatewaySettings(is_draining=lambda: True)
    with TestClient(make_served_app(registry, draining)) as client:
        assert_error(client.post("/pooling", json=body), 503, None)
    small = GatewaySettings(max_request_bytes=64)
    with TestClient(make_served_app(registry, small)) as client:
        too_big = client.post("/classify", json={"model": "clf", "input": ["x" * 100]})
        assert_error(too_big, 413, None)
    busy = FakeRegistry([FakeServedModel("busy", fail_with=Overloaded("full"))])
    with TestClient(make_served_app(busy)) as client:
        assert_error(client.post("/classify", json={"input": "a"}), 429, None, "full")


def test_openai_sdk_sends_truncate_prompt_tokens_as_vllm_documents(client) -> None:
    """The `openai` SDK, unmodified, sends vLLM's extension the way vLLM's docs show it
    (`extra_body`): the vector /v1/embeddings gives the raw request, and a wrong value comes
    back as the SDK's BadRequestError naming the field."""
    import openai

    sdk = openai.OpenAI(
        base_url=f"{client.base_url}/v1", api_key="x", http_client=client, max_retries=0
    )
    fields = {"truncate_prompt_tokens": 5}
    got = sdk.embeddings.create(model="embed", input=TEXTS[2], extra_body=fields)
    raw = post(client, "/v1/embeddings", model="embed", input=TEXTS[2], **fields)
    assert got.data[0].embedding == raw["data"][0]["embedding"]
    assert got.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(
            model="embed", input=TEXTS[2], extra_body={"truncate_prompt_tokens": 0}
        )
    assert "truncate_prompt_tokens" in str(refused.value)
