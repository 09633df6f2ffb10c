from __future__ import annotations

import pytest
import torch

from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.registry import Task
from tests.encoder_support import kserve_forward, load_processor, run_processor

TEXTS = ["I love this movie, it is great!", "terrible film", "the dog sat on the mat"]


@pytest.fixture(scope="module")
def reference_logits(tiny_models):
    _, logits = kserve_forward(tiny_models["bert-seq-cls"], Task.sequence_classification, TEXTS)
    return logits


def test_default_is_argmax_index_int64(tiny_models, reference_logits):
    processor = load_processor(tiny_models["bert-seq-cls"], Task.sequence_classification)
    prediction = run_processor(processor, TEXTS)

    expected = [int(row.argmax()) for row in reference_logits]
    assert prediction.predictions == expected
    assert all(type(p) is int for p in prediction.predictions)
    [tensor] = prediction.tensors
    assert (tensor.name, tensor.datatype, tensor.shape, tensor.data) == (
        "output-0",
        "INT64",
        [3],
        expected,
    )


def test_probabilities_are_softmax_rounded_to_4dp(tiny_models, reference_logits):
    processor = load_processor(
        tiny_models["bert-seq-cls"], Task.sequence_classification, return_probabilities=True
    )
    prediction = run_processor(processor, TEXTS)

    expected = []
    for row in reference_logits:
        probs = torch.softmax(row.unsqueeze(0), dim=-1).squeeze()
        expected.append({j: float(f"{probs[j]:.4f}") for j in range(probs.size(0))})
    assert prediction.predictions == expected
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape) == ("BYTES", [3])
    assert tensor.data == [str(d) for d in expected]  # KServe sends str(dict)
    assert tensor.data[0].startswith("{0: 0.")


def test_raw_logits_equal_model_logits(tiny_models, reference_logits):
    processor = load_processor(
        tiny_models["bert-seq-cls"], Task.sequence_classification, return_raw_logits=True
    )
    prediction = run_processor(processor, TEXTS)

    for got, row in zip(prediction.predictions, reference_logits, strict=True):
        assert list(got) == [0, 1]
        assert [got[0], got[1]] == pytest.approx(row.tolist(), abs=1e-6)
    assert prediction.tensors[0].datatype == "BYTES"


def test_output_specs_follow_flags(tiny_models):
    path = tiny_models["bert-seq-cls"]
    plain = load_processor(path, Task.sequence_classification)
    probs = load_processor(path, Task.sequence_classification, return_probabilities=True)
    assert [(s.datatype, s.shape) for s in plain.output_specs()] == [("INT64", [-1])]
    assert [(s.datatype, s.shape) for s in probs.output_specs()] == [("BYTES", [-1])]


def test_lower_casing_flag_changes_tokens_and_outputs(tiny_models):
    path = tiny_models["bert-seq-cls"]
    texts = ["Hello Paris and John"]
    lower = run_processor(
        load_processor(path, Task.sequence_classification, return_raw_logits=True), texts
    )
    cased = run_processor(
        load_processor(
            path, Task.sequence_classification, return_raw_logits=True, disable_lower_case=True
        ),
        texts,
    )
    _, ref_lower = kserve_forward(path, Task.sequence_classification, texts)
    _, ref_cased = kserve_forward(path, Task.sequence_classification, texts, lower_case=False)
    assert list(lower.predictions[0].values()) == pytest.approx(ref_lower[0].tolist(), abs=1e-6)
    assert list(cased.predictions[0].values()) == pytest.approx(ref_cased[0].tolist(), abs=1e-6)
    assert lower.predictions != cased.predictions


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "empty"),
        ([1, 2], "instance 0 is int"),
        (["ok", None], "instance 1 is NoneType"),
        ({"text": "x"}, "list of strings"),
    ],
)
def test_bad_instances_are_invalid_input(tiny_models, instances, message):
    processor = load_processor(tiny_models["bert-seq-cls"], Task.sequence_classification)
    with pytest.raises(InvalidInput, match=message):
        processor.decode_instances(instances)


def test_bare_string_is_one_instance(tiny_models):
    processor = load_processor(tiny_models["bert-seq-cls"], Task.sequence_classification)
    assert processor.decode_instances("hello") == ["hello"]


def test_text_empty_after_tokenization_is_invalid(tiny_models):
    processor = load_processor(
        tiny_models["bert-seq-cls"], Task.sequence_classification, disable_special_tokens=True
    )
    with pytest.raises(InvalidInput, match="instance 1 is empty after tokenization"):
        run_processor(processor, ["hello", ""])
