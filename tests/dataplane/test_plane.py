"""The protocol-neutral data plane over fake models: every rule V1, V2 REST and gRPC share."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from hf_runtime.dataplane import (
    DataPlane,
    InferenceRequest,
    RequestedOutput,
    RequestTensor,
)
from hf_runtime.dataplane.plane import ModelVersionNotFound
from hf_runtime.errors import (
    ErrorKind,
    HFRuntimeError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    NotImplementedFeature,
    Overloaded,
    Unsupported,
)
from hf_runtime.types import TextPair
from tests.fake_scorer import fake_relevance
from tests.fakes import FakeRegistry, fake_label
from tests.protocols.conftest import make_fake_registry


@pytest.fixture
def registry() -> FakeRegistry:
    return make_fake_registry()


@pytest.fixture
def plane(registry: FakeRegistry) -> DataPlane:
    return DataPlane(registry)


def texts_request(texts: list[Any], **more: Any) -> InferenceRequest:
    return InferenceRequest([RequestTensor("input-0", "BYTES", [len(texts)], texts)], **more)


# ---------------------------------------------------------------- server and models


def test_server_health_and_metadata(plane: DataPlane, registry: FakeRegistry) -> None:
    assert plane.live() and plane.ready()
    metadata = plane.server_metadata()
    assert metadata.name == "hf-runtime" and metadata.extensions == ["binary_tensor_data"]
    assert metadata.version
    registry.get("clf").ready = False
    assert not plane.ready() and plane.live()
    assert plane.model_names() == registry.names()


def test_model_ready_and_versions(plane: DataPlane, registry: FakeRegistry) -> None:
    assert plane.model_ready("clf") is True
    with pytest.raises(ModelNotFound):
        plane.model_ready("nope")
    with pytest.raises(NotImplementedFeature, match="Model versioning not supported yet."):
        plane.model_ready("clf", "1")
    assert plane.model_ready("versioned", "2") is True
    with pytest.raises(ModelVersionNotFound, match="has no version 3; versions: 1, 2") as caught:
        plane.model_ready("versioned", "3")
    assert caught.value.kind is ErrorKind.NOT_FOUND
    registry.get("clf").ready = False
    assert plane.model_ready("clf") is False  # loading: not ready, not an error


def test_model_metadata(plane: DataPlane, registry: FakeRegistry) -> None:
    metadata = plane.model_metadata("ner")
    assert metadata.name == "ner" and metadata.versions is None
    assert [o.name for o in metadata.outputs] == ["output-0", "offset_mapping"]
    assert plane.model_metadata("versioned", "1").versions == ["1", "2"]
    with pytest.raises(NotImplementedFeature):
        plane.model_metadata("clf", "1")
    registry.get("clf").ready = False
    with pytest.raises(ModelNotReady):
        plane.model_metadata("clf")


@pytest.mark.parametrize(
    ("name", "version", "error", "contains"),
    [
        ("nope", None, ModelNotFound, "does not exist"),
        ("gpt", None, Unsupported, "use /v1/chat/completions or /v1/completions"),
        ("clf", "1", NotImplementedFeature, "versioning"),
        ("versioned", "9", ModelVersionNotFound, "no version 9"),
    ],
)
def test_predictor_refusals(
    plane: DataPlane,
    name: str,
    version: str | None,
    error: type[HFRuntimeError],
    contains: str,
) -> None:
    with pytest.raises(error, match=contains):
        plane.predictor(name, version)


def test_predictor_of_a_loading_model_is_503(plane: DataPlane, registry: FakeRegistry) -> None:
    registry.get("gpt").ready = False
    with pytest.raises(ModelNotReady):
        plane.predictor("gpt")


# ---------------------------------------------------------------- inference


async def test_v1_predict(plane: DataPlane, registry: FakeRegistry) -> None:
    prediction = await plane.predict("clf", ["ab", "abc"])
    assert prediction.predictions == [1, 0]
    assert registry.get("clf").predict_calls == [["ab", "abc"]]


async def test_infer_texts_and_ids(plane: DataPlane, registry: FakeRegistry) -> None:
    response = await plane.infer("clf", None, texts_request(["ab", b"h\xc3\xa9"], id="r1"))
    assert (response.model_name, response.model_version, response.id) == ("clf", None, "r1")
    assert response.outputs[0].data == [fake_label("ab"), fake_label("hé")]
    assert registry.get("clf").predict_calls == [["ab", "hé"]]  # bytes decoded as UTF-8
    generated = await plane.infer("versioned", "2", texts_request(["x"]))
    assert generated.model_version == "2" and uuid.UUID(generated.id).version == 4


async def test_infer_filters_and_orders_outputs(plane: DataPlane) -> None:
    wanted = [RequestedOutput("offset_mapping"), RequestedOutput("output-0")]
    wanted.append(RequestedOutput("offset_mapping", binary=True))  # a duplicate name
    response = await plane.infer("ner", None, texts_request(["my name"], outputs=wanted))
    assert [t.name for t in response.outputs] == ["offset_mapping", "output-0"]
    every = await plane.infer("ner", None, texts_request(["my name"], outputs=[]))
    assert [t.name for t in every.outputs] == ["output-0", "offset_mapping"]


@pytest.mark.parametrize(
    ("request_", "contains"),
    [
        (InferenceRequest([]), "exactly one BYTES input, got none"),
        (
            InferenceRequest([RequestTensor("a", "BYTES", [1], ["x"])] * 2),
            "exactly one BYTES input, got 'a', 'a'",
        ),
        (InferenceRequest([RequestTensor("ids", "INT64", [1], [3])]), "must be BYTES, got INT64"),
        (InferenceRequest([RequestTensor("t", "BYTES", [0], [])]), "has no elements"),
        (texts_request([b"\xff"]), "element 0 is not UTF-8"),
        (texts_request(["a"], outputs=[RequestedOutput("logits")]), "unknown output 'logits'"),
    ],
)
async def test_infer_refuses_bad_requests(
    plane: DataPlane, request_: InferenceRequest, contains: str
) -> None:
    with pytest.raises(InvalidInput, match=contains):
        await plane.infer("clf", None, request_)


def pairs_request(texts: list[Any], text_pairs: list[Any]) -> InferenceRequest:
    return InferenceRequest(
        [
            RequestTensor("text_pair", "BYTES", [len(text_pairs)], text_pairs),  # any order
            RequestTensor("text", "BYTES", [len(texts)], texts),
        ]
    )


async def test_text_pairs_are_scored(plane: DataPlane, registry: FakeRegistry) -> None:
    pairs = [TextPair("a b", "b"), TextPair("x", "y")]
    prediction = await plane.predict("rerank", pairs)
    expected = [fake_relevance(p.text, p.text_pair) for p in pairs]
    assert prediction.predictions == expected
    (tensor,) = prediction.tensors
    assert (tensor.name, tensor.datatype, tensor.shape, tensor.data) == (
        "output-0", "FP64", [2], expected,
    )  # fmt: skip
    response = await plane.infer("rerank", None, pairs_request(["a b", "x"], [b"b", "y"]))
    assert response.outputs[0].data == expected
    assert registry.get("rerank").scorer.calls[-1] == (["a b", "x"], ["b", "y"])
    embedded = await plane.predict("embed", pairs)  # an embedding model scores pairs too
    assert len(embedded.predictions) == 2


@pytest.mark.parametrize(
    ("name", "request_", "error", "contains"),
    [
        ("rerank", texts_request(["a"]), Unsupported, '"text_pair": ...}'),
        ("clf", pairs_request(["a"], ["b"]), Unsupported, "text pairs; use plain texts"),
        ("gpt", pairs_request(["a"], ["b"]), Unsupported, "/v1/chat/completions"),
        ("rerank", pairs_request(["a"], ["b", "c"]), InvalidInput, "got 1 and 2"),
        ("rerank", pairs_request(["a"] * 17, ["b"] * 17), InvalidInput, "at most 16"),
        (
            "rerank",
            InferenceRequest([RequestTensor("text", "BYTES", [1], ["a"])] * 2),
            InvalidInput,
            "text pairs take two, named 'text' and 'text_pair'",
        ),
    ],
)
async def test_pair_refusals(
    plane: DataPlane,
    name: str,
    request_: InferenceRequest,
    error: type[HFRuntimeError],
    contains: str,
) -> None:
    with pytest.raises(error, match=re.escape(contains)):
        await plane.infer(name, None, request_)


async def test_v1_mixes_of_texts_and_pairs_are_refused(plane: DataPlane) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        await plane.predict("rerank", [TextPair("a", "b"), "c"])  # type: ignore[list-item]


def test_check_inference_admits_texts_or_pairs(plane: DataPlane, registry: FakeRegistry) -> None:
    for name in ("clf", "embed", "rerank"):
        plane.check_inference(name)
    with pytest.raises(Unsupported, match="/v1/chat/completions"):
        plane.check_inference("gpt")
    with pytest.raises(ModelNotFound):
        plane.check_inference("nope")
    registry.get("rerank").ready = False
    with pytest.raises(ModelNotReady):
        plane.check_inference("rerank")


async def test_infer_passes_model_errors_through(plane: DataPlane) -> None:
    with pytest.raises(Overloaded, match="queue is full"):
        await plane.infer("busy", None, texts_request(["a"]))


# ---------------------------------------------------------------- neutral types


@pytest.mark.parametrize(
    ("shape", "data", "contains"),
    [
        ([2], ["a"], r"shape \[2\] needs 2 elements, got 1"),
        ([], ["a", "b"], r"shape \[\] needs 1 elements, got 2"),
        ([-1], ["a"], "negative dimension"),
    ],
)
def test_request_tensors_check_their_shape(
    shape: list[int], data: list[Any], contains: str
) -> None:
    with pytest.raises(InvalidInput, match=contains):
        RequestTensor("t", "BYTES", shape, data)
    assert RequestTensor("t", "BYTES", [1, 2], ["a", "b"]).data == ["a", "b"]


def test_binary_output_flags() -> None:
    outputs = [RequestedOutput("a", binary=False), RequestedOutput("b")]
    request = texts_request(["x"], outputs=outputs, binary_outputs=True)
    assert (request.wants_binary("a"), request.wants_binary("b")) == (False, True)
    assert texts_request(["x"]).wants_binary("a") is False
