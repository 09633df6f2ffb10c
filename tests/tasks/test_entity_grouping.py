"""Token classification entity grouping (aggregation_strategy): equal to transformers'
token-classification pipeline for every strategy, settable per model and per request, and off
by default (KServe-exact)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import transformers

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.registry import Task
from hf_runtime.types import OutputOptions, parse_output_options
from tests.encoder_support import load_processor, model_config, run_processor, source_for
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model
from tests.served_app import make_served_app

TEXTS = [
    "Hugging Face Inc. is a company based in New York City.",
    "My name is Wolfgang and I live in Berlin",
    "unbelievably xyzzyq tokenization!",
]
STRATEGIES = ["none", "simple", "first", "average", "max"]


def _equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [{k: v for k, v in g.items() if k != "score"} for g in got] == [
        {k: (int(v) if k == "index" else v) for k, v in w.items() if k != "score"} for w in want
    ]
    assert [g["score"] for g in got] == pytest.approx([float(w["score"]) for w in want], abs=1e-5)


@pytest.fixture(scope="module")
def pipe(tiny_models):
    return transformers.pipeline(
        "token-classification", model=str(tiny_models["bert-ner"]), device="cpu"
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_equals_the_pipeline(tiny_models, pipe, strategy) -> None:
    processor = load_processor(
        tiny_models["bert-ner"], Task.token_classification, aggregation_strategy=strategy
    )
    got = run_processor(processor, TEXTS)
    compared = 0
    for text, mine in zip(TEXTS, got.predictions, strict=True):
        want = pipe(text, aggregation_strategy=strategy)
        _equal(mine, want)
        compared += len(want)
    assert compared > 0  # the tiny model labels something other than "O"
    tensor = got.tensors[0]
    assert (tensor.datatype, tensor.shape) == ("BYTES", [len(TEXTS)])
    assert [json.loads(d) for d in tensor.data] == got.predictions
    assert [s.name for s in processor.output_specs()] == [tensor.name]


def test_words_group_subwords(tiny_models, pipe) -> None:
    """At least one text has a multi-token word, so the word strategies are exercised."""
    processor = load_processor(tiny_models["bert-ner"], Task.token_classification)
    encodings = processor.backend.tokenize(TEXTS)
    tokens = [processor.backend.token_strings(e.input_ids).tokens for e in encodings]
    assert any(t.startswith("##") for row in tokens for t in row)


def test_off_by_default_and_per_request_copy(tiny_models) -> None:
    processor = load_processor(tiny_models["bert-ner"], Task.token_classification)
    assert processor.options.aggregation_strategy is None
    plain = run_processor(processor, TEXTS)
    assert all(isinstance(p[0][0], int) for p in plain.predictions)
    assert [t.name for t in plain.tensors] == ["output-0"]  # no offsets unless asked for
    encodings = processor.backend.tokenize(TEXTS)
    outputs = processor.backend.forward(processor.forward_items(encodings), processor.forward_spec)
    options = processor.options.with_request(OutputOptions(aggregation_strategy="simple"))
    grouped = processor.postprocess(encodings, outputs, options)
    assert processor.options.aggregation_strategy is None
    assert all(isinstance(p, list) for p in grouped.predictions)
    assert processor.postprocess(encodings, outputs).predictions == plain.predictions


def test_bad_values_name_the_key() -> None:
    from hf_runtime.config import load_config

    with pytest.raises(ConfigError, match="aggregation_strategy"):
        load_config({"model_id": "x", "aggregation_strategy": "mean"}, env={})
    assert ModelConfig(model_id="x").aggregation_strategy is None
    with pytest.raises(ValueError, match="parameters.aggregation_strategy must be one of"):
        parse_output_options({"aggregation_strategy": "mean"}, "parameters")
    assert parse_output_options({"aggregation_strategy": "max"}, "p") == OutputOptions(
        aggregation_strategy="max"
    )


async def test_per_request_override_through_v2(tiny_models, pipe) -> None:
    path = tiny_models["bert-ner"]
    model = await load_encoder_model(
        model_config(path, model_name="ner"), source_for(path), Task.token_classification
    )
    app = make_served_app(FakeRegistry([model]))
    transport = httpx.ASGITransport(app=app)
    tensor = {"name": "t", "shape": [2], "datatype": "BYTES", "data": TEXTS[:2]}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            plain = await client.post("/v2/models/ner/infer", json={"inputs": [tensor]})
            grouped = await client.post(
                "/v2/models/ner/infer",
                json={"inputs": [tensor], "parameters": {"aggregation_strategy": "first"}},
            )
            bad = await client.post(
                "/v2/models/ner/infer",
                json={"inputs": [tensor], "parameters": {"aggregation_strategy": "mean"}},
            )
            again = await client.post("/v2/models/ner/infer", json={"inputs": [tensor]})
    finally:
        await model.aclose()
    assert plain.status_code == grouped.status_code == again.status_code == 200
    assert plain.json()["outputs"] == again.json()["outputs"]
    assert plain.json()["outputs"][0]["datatype"] == "INT64"
    [output] = grouped.json()["outputs"]
    assert (output["datatype"], output["shape"]) == ("BYTES", [2])
    for text, data in zip(TEXTS[:2], output["data"], strict=True):
        _equal(json.loads(data), pipe(text, aggregation_strategy="first"))
    assert bad.status_code == 400 and "aggregation_strategy must be one of" in bad.json()["error"]
