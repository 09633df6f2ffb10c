"""Opt-in encoder outputs (return_labels, top_k): equal to transformers' own pipelines, settable
per model and per request (V1/V2 `parameters`), validated, and off by default."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import transformers
from starlette.testclient import TestClient

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.registry import Task
from hf_runtime.types import OutputOptions
from tests.encoder_support import load_processor, model_config, run_processor, source_for
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model
from tests.protocols.conftest import make_fake_registry, make_mounted_app
from tests.served_app import make_served_app

TEXTS = ["I love this movie, it is great!", "terrible film", "the dog sat on the mat"]
MASKED = ["the dog [MASK] on the mat", "paris is the [MASK] of [MASK]"]


def _close(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [{k: v for k, v in g.items() if k != "score"} for g in got] == [
        {k: v for k, v in w.items() if k not in ("score", "sequence")} for w in want
    ]
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-5)


@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_labels_and_top_k_equal_the_text_classification_pipeline(tiny_models, top_k) -> None:
    path = tiny_models["bert-seq-cls"]
    processor = load_processor(path, Task.sequence_classification, return_labels=True, top_k=top_k)
    got = run_processor(processor, TEXTS)
    pipe = transformers.pipeline("text-classification", model=str(path), device="cpu")
    for text, mine in zip(TEXTS, got.predictions, strict=True):
        if top_k is None:  # the pipeline's default: the best label only
            _close([mine], pipe(text, function_to_apply="softmax"))
        else:
            _close(mine, pipe(text, top_k=top_k, function_to_apply="softmax"))
    tensor = got.tensors[0]
    assert (tensor.datatype, tensor.shape) == ("BYTES", [3])
    assert [json.loads(d) for d in tensor.data] == got.predictions


def test_multi_label_checkpoint_scores_are_sigmoids(tiny_models, tmp_path) -> None:
    import shutil

    path = tmp_path / "multi"
    shutil.copytree(tiny_models["bert-seq-cls"], path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(
        json.dumps({**config, "problem_type": "multi_label_classification"})
    )
    processor = load_processor(path, Task.sequence_classification, return_labels=True, top_k=2)
    got = run_processor(processor, TEXTS)
    pipe = transformers.pipeline("text-classification", model=str(path), device="cpu")
    for text, mine in zip(TEXTS, got.predictions, strict=True):
        _close(mine, pipe(text, top_k=2, function_to_apply="sigmoid"))
        assert sum(item["score"] for item in mine) != pytest.approx(1.0)


def test_top_k_without_labels_gives_class_indexes(tiny_models) -> None:
    processor = load_processor(tiny_models["bert-seq-cls"], Task.sequence_classification)
    with_k = processor.options.with_request(OutputOptions(top_k=1))
    assert processor.options.top_k is None  # the shared options are untouched
    encodings = processor.backend.tokenize(TEXTS)
    outputs = processor.backend.forward(processor.forward_items(encodings), processor.forward_spec)
    got = processor.postprocess(encodings, outputs, with_k)
    plain = processor.postprocess(encodings, outputs)
    assert [p[0]["label"] for p in got.predictions] == plain.predictions


@pytest.mark.parametrize("top_k", [1, 3])
def test_fill_mask_top_k_equals_the_pipeline(tiny_models, top_k) -> None:
    path = tiny_models["bert-mlm"]
    processor = load_processor(path, Task.fill_mask, top_k=top_k)
    got = run_processor(processor, MASKED)
    pipe = transformers.pipeline("fill-mask", model=str(path), device="cpu")
    for text, mine in zip(MASKED, got.predictions, strict=True):
        want = pipe(text, top_k=top_k)
        per_mask = want if isinstance(want[0], list) else [want]
        assert len(mine) == len(per_mask) == text.count("[MASK]")
        for candidates, expected in zip(mine, per_mask, strict=True):
            _close(candidates, expected)
    assert got.tensors[0].shape == [2]


@pytest.mark.parametrize(
    ("flags", "key"),
    [({"top_k": 0}, "top_k"), ({"return_labels": "maybe"}, "return_labels")],
)
def test_bad_config_values_are_config_errors_naming_the_key(flags, key) -> None:
    from hf_runtime.config import load_config

    with pytest.raises(ConfigError, match=key):
        load_config({"model_id": "x", **flags}, env={})
    assert ModelConfig(model_id="x").top_k is None


# ---------------------------------------------------------------- per request, through apps


@pytest.fixture
def fake_client() -> Any:
    registry = make_fake_registry()
    with TestClient(make_mounted_app(registry), raise_server_exceptions=False) as client:
        yield client, registry.get("clf")


def test_v1_and_v2_parameters_reach_the_predictor(fake_client) -> None:
    client, model = fake_client
    v1 = client.post(
        "/v1/models/clf:predict",
        json={"instances": ["a"], "parameters": {"top_k": 2, "return_labels": True}},
    )
    v2 = client.post(
        "/v2/models/clf/infer",
        json={
            "inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
            "parameters": {"top_k": 3, "binary_data_output": False},
        },
    )
    plain = client.post("/v1/models/clf:predict", json={"instances": ["a"]})
    assert (v1.status_code, v2.status_code, plain.status_code) == (200, 200, 200)
    assert model.predict_options == [
        OutputOptions(return_labels=True, top_k=2),
        OutputOptions(top_k=3),
        None,
    ]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"top_k": 0}, "top_k must be an integer of at least 1"),
        ({"top_k": "2"}, "top_k must be an integer"),
        ({"return_labels": 1}, "return_labels must be true or false"),
    ],
)
def test_bad_request_options_are_400s_in_each_protocols_shape(fake_client, parameters, message):
    client, model = fake_client
    v1 = client.post("/v1/models/clf:predict", json={"instances": ["a"], "parameters": parameters})
    tensor = {"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}
    v2 = client.post("/v2/models/clf/infer", json={"inputs": [tensor], "parameters": parameters})
    assert (v1.status_code, v2.status_code) == (400, 400)
    assert message in v1.json()["error"] and message in v2.json()["error"]
    assert model.predict_calls == []


def test_unknown_parameters_v1_refuses_v2_ignores_like_kserve(fake_client):
    client, model = fake_client
    parameters = {"colour": "red", "priority": 1}
    v1 = client.post("/v1/models/clf:predict", json={"instances": ["a"], "parameters": parameters})
    assert v1.status_code == 400 and "unknown parameters key(s) colour" in v1.json()["error"]
    tensor = {"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}
    v2 = client.post("/v2/models/clf/infer", json={"inputs": [tensor], "parameters": parameters})
    assert v2.status_code == 200, v2.text


async def test_per_request_override_through_the_real_encoder_model(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    model = await load_encoder_model(
        model_config(path, model_name="clf"), source_for(path), Task.sequence_classification
    )
    app = make_served_app(FakeRegistry([model]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"instances": TEXTS[:2]}
            plain = await client.post("/v1/models/clf:predict", json=body)
            labelled = await client.post(
                "/v1/models/clf:predict", json={**body, "parameters": {"return_labels": True}}
            )
            again = await client.post("/v1/models/clf:predict", json=body)
            tensor = {"name": "t", "shape": [2], "datatype": "BYTES", "data": TEXTS[:2]}
            v2 = await client.post(
                "/v2/models/clf/infer", json={"inputs": [tensor], "parameters": {"top_k": 2}}
            )
    finally:
        await model.aclose()
    assert plain.json() == again.json()  # the override lasted one request only
    assert all(type(p) is int for p in plain.json()["predictions"])
    labels = [p["label"] for p in labelled.json()["predictions"]]
    assert all(isinstance(label, str) for label in labels)
    [output] = v2.json()["outputs"]
    assert (output["datatype"], output["shape"]) == ("BYTES", [2])
    assert [len(json.loads(d)) for d in output["data"]] == [2, 2]
