"""auto_truncate: false refuses encoder inputs over the maximum length (413, naming the input)
on every protocol; true (the default) keeps KServe's silent truncation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hf_runtime.errors import InvalidInput, TooLarge
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.tasks.registry import Task
from tests.encoder_support import kserve_forward, load_backend, model_config, source_for
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

LIMIT = 16  # max_model_len of the models below: short enough to exceed with a sentence
LONG = "the quick brown fox jumps over the lazy dog " * 3  # 27 words, 29 tokens with [CLS]/[SEP]
SHORT = "hello world"


async def load(path: Path, task: Task, **flags: Any) -> EncoderModel:
    config = model_config(path, max_model_len=LIMIT, **flags)
    return await load_encoder_model(config, source_for(path), task)


def full_length(path: Path, text: str) -> int:
    backend = load_backend(path, Task.sequence_classification, max_model_len=LIMIT)
    return len(backend.tokenize([text], truncate=False)[0])


# ---------------------------------------------------------------- backend


def test_backend_tokenize_keeps_every_token_without_truncation(tiny_models, caplog) -> None:
    backend = load_backend(tiny_models["bert-seq-cls"], Task.sequence_classification)
    text = "hello world " * 200  # 402 tokens against a 256-token model
    with caplog.at_level(logging.WARNING):
        (full,) = backend.tokenize([text], truncate=False)
    assert len(full) == 402
    assert "longer than the specified maximum" not in caplog.text  # no transformers noise
    (cut,) = backend.tokenize([text])  # the default stays KServe's truncation
    assert len(cut) == backend.max_length == 256
    assert cut.input_ids[:-1] == full.input_ids[:255]
    (again,) = backend.tokenize([text], truncate=False)  # switching back and forth is safe
    assert again == full


# ---------------------------------------------------------------- EncoderModel


async def test_predict_refuses_an_input_over_the_limit(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    model = await load(path, Task.sequence_classification, auto_truncate=False)
    tokens = full_length(path, LONG)
    assert tokens > LIMIT
    with pytest.raises(TooLarge) as caught:
        await model.predict([SHORT, LONG])
    assert caught.value.param == "instances"
    assert f"instance 1 has {tokens} tokens" in caught.value.message
    assert f"maximum of {LIMIT}" in caught.value.message
    assert "auto_truncate" in caught.value.message
    assert len((await model.predict([SHORT])).predictions) == 1
    await model.aclose()


async def test_an_input_of_exactly_the_limit_is_accepted(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    model = await load(path, Task.sequence_classification, auto_truncate=False)
    exact = " ".join(["hello"] * (LIMIT - 2))  # plus [CLS] and [SEP]
    assert full_length(path, exact) == LIMIT
    assert len((await model.predict([exact])).predictions) == 1
    with pytest.raises(TooLarge, match=f"has {LIMIT + 1} tokens"):
        await model.predict([exact + " hello"])
    await model.aclose()


async def test_default_truncates_as_kserve_does(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    truncating = await load(path, Task.sequence_classification, return_raw_logits=True)
    assert truncating.config.auto_truncate is True
    prediction = await truncating.predict([LONG])
    _, logits = kserve_forward(path, Task.sequence_classification, [LONG], max_length=LIMIT)
    assert list(prediction.predictions[0].values()) == pytest.approx(logits[0].tolist(), abs=1e-6)
    await truncating.aclose()


async def test_token_classification_and_fill_mask_refuse_too(tiny_models) -> None:
    ner = await load(tiny_models["bert-ner"], Task.token_classification, auto_truncate=False)
    with pytest.raises(TooLarge, match="instance 0 has"):
        await ner.predict([LONG])
    mlm = await load(tiny_models["bert-mlm"], Task.fill_mask, auto_truncate=False)
    with pytest.raises(TooLarge, match="instance 0 has"):
        await mlm.predict([LONG + " [MASK]"])
    for model in (ner, mlm):
        await model.aclose()


async def test_embed_refuses_texts_and_token_lists_over_the_limit(tiny_models) -> None:
    path = tiny_models["bert-embed"]
    strict = await load(path, Task.text_embedding, auto_truncate=False)
    with pytest.raises(TooLarge) as caught:
        await strict.embed([SHORT, SHORT, LONG])
    assert (caught.value.param, "input 2 has" in caught.value.message) == ("input", True)
    with pytest.raises(TooLarge, match=f"input 1 has {LIMIT + 1} tokens"):
        await strict.embed([[5] * 3, [5] * (LIMIT + 1)])
    assert len((await strict.embed([[5] * LIMIT])).embeddings) == 1

    lenient = await load(path, Task.text_embedding)
    assert len((await lenient.embed([LONG])).embeddings) == 1
    # Token lists are never cut: too long stays the 400 it always was.
    with pytest.raises(InvalidInput, match=f"has {LIMIT + 1} tokens"):
        await lenient.embed([[5] * (LIMIT + 1)])
    for model in (strict, lenient):
        await model.aclose()


# ---------------------------------------------------------------- every protocol


@pytest.fixture
async def strict_client(tiny_models) -> AsyncIterator[httpx.AsyncClient]:
    flags = {"auto_truncate": False}
    models = [
        await load(
            tiny_models["bert-seq-cls"], Task.sequence_classification, model_name="clf", **flags
        ),
        await load(tiny_models["bert-embed"], Task.text_embedding, model_name="embed", **flags),
    ]
    app = make_served_app(FakeRegistry(models))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    for model in models:
        await model.aclose()


def assert_kserve_413(response: httpx.Response, contains: str) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert contains in body["error"], body


async def test_every_protocol_answers_413_in_its_own_shape(strict_client) -> None:
    v1 = await strict_client.post("/v1/models/clf:predict", json={"instances": [SHORT, LONG]})
    assert_kserve_413(v1, "instance 1 has")
    tensor = {"name": "input-0", "shape": [2], "datatype": "BYTES", "data": [LONG, SHORT]}
    v2 = await strict_client.post("/v2/models/clf/infer", json={"inputs": [tensor]})
    assert_kserve_413(v2, "instance 0 has")
    for prefix in ("/v1", "/openai/v1"):
        texts = await strict_client.post(
            f"{prefix}/embeddings", json={"model": "embed", "input": [SHORT, LONG]}
        )
        assert_error(texts, 413, "input", f"maximum of {LIMIT}")
        ids = await strict_client.post(
            f"{prefix}/embeddings", json={"model": "embed", "input": [5] * (LIMIT + 1)}
        )
        assert_error(ids, 413, "input", f"input 0 has {LIMIT + 1} tokens")
    ok = await strict_client.post("/v1/models/clf:predict", json={"instances": [SHORT]})
    assert ok.status_code == 200, ok.text
