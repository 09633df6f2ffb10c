from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_runtime.backends import ForwardItem
from hf_runtime.tasks.registry import Task
from tests.encoder_support import kserve_forward, load_processor, run_processor

TEXTS = ["John Smith works at Google in Paris", "hello world"]


@pytest.fixture(scope="module")
def reference(tiny_models):
    return kserve_forward(tiny_models["bert-ner"], Task.token_classification, TEXTS, offsets=True)


def test_default_is_argmax_per_position_with_extra_nesting(tiny_models, reference):
    inputs, logits = reference
    processor = load_processor(tiny_models["bert-ner"], Task.token_classification)
    prediction = run_processor(processor, TEXTS)

    expected = [torch.argmax(row.unsqueeze(0), dim=2).tolist() for row in logits]
    assert prediction.predictions == expected
    seq = inputs["input_ids"].shape[1]
    # The short text is padded to the long one and its pad positions are labelled too.
    assert [len(p[0]) for p in prediction.predictions] == [seq, seq]
    assert inputs["attention_mask"][1].sum() < seq
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape) == ("INT64", [2, 1, seq])
    assert tensor.data == [label for p in expected for label in p[0]]


def test_probabilities_per_position(tiny_models, reference):
    _, logits = reference
    processor = load_processor(
        tiny_models["bert-ner"], Task.token_classification, return_probabilities=True
    )
    prediction = run_processor(processor, TEXTS)

    probs = torch.softmax(logits, dim=-1)
    expected = [[{j: float(f"{v[j]:.4f}") for j in range(v.size(0))} for v in row] for row in probs]
    assert prediction.predictions == expected
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape) == ("BYTES", [2, logits.shape[1]])
    assert tensor.data[0] == str(expected[0][0])


def test_raw_logits_per_position(tiny_models, reference):
    _, logits = reference
    processor = load_processor(
        tiny_models["bert-ner"], Task.token_classification, return_raw_logits=True
    )
    prediction = run_processor(processor, TEXTS)
    for got_row, row in zip(prediction.predictions, logits, strict=True):
        got = np.array([[d[j] for j in range(9)] for d in got_row])
        np.testing.assert_allclose(got, row.numpy(), atol=1e-5)


def test_offsets_mapping_tensor(tiny_models, reference):
    inputs, _ = reference
    processor = load_processor(
        tiny_models["bert-ner"], Task.token_classification, return_offsets_mapping=True
    )
    prediction = run_processor(processor, TEXTS)

    assert len(prediction.tensors) == 2
    offsets = prediction.tensors[1]
    expected = inputs["offset_mapping"]
    assert (offsets.name, offsets.datatype, offsets.shape) == (
        "offset_mapping",
        "INT64",
        list(expected.shape),
    )
    assert offsets.data == expected.flatten().tolist()
    assert [s.name for s in processor.output_specs()] == ["output-0", "offset_mapping"]


def test_offsets_off_by_default(tiny_models):
    processor = load_processor(tiny_models["bert-ner"], Task.token_classification)
    assert len(run_processor(processor, TEXTS).tensors) == 1
    assert [s.name for s in processor.output_specs()] == ["output-0"]


def test_extra_padding_from_other_requests_changes_nothing(tiny_models):
    """The batcher may pad an item further than its request did; outputs are sliced back."""
    processor = load_processor(
        tiny_models["bert-ner"], Task.token_classification, return_raw_logits=True
    )
    backend = processor.backend
    encodings = backend.tokenize(TEXTS)
    items = processor.forward_items(encodings)
    alone = backend.forward(items, processor.forward_spec)
    stranger = ForwardItem(backend.tokenize(["the quick brown fox " * 8])[0])
    together = backend.forward([*items, stranger], processor.forward_spec)
    assert stranger.padded_length > items[0].padded_length
    for a, b in zip(alone, together[:2], strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_max_model_len_truncates_like_kserve(tiny_models):
    path = tiny_models["bert-ner"]
    long_text = " ".join(["paris"] * 40)
    processor = load_processor(path, Task.token_classification, max_model_len=12)
    prediction = run_processor(processor, [long_text, "hello"])
    inputs, logits = kserve_forward(
        path, Task.token_classification, [long_text, "hello"], max_length=12
    )
    assert inputs["input_ids"].shape[1] == 12
    assert prediction.predictions == [torch.argmax(r.unsqueeze(0), dim=2).tolist() for r in logits]


def test_special_tokens_flag(tiny_models):
    path = tiny_models["bert-ner"]
    processor = load_processor(path, Task.token_classification, disable_special_tokens=True)
    prediction = run_processor(processor, TEXTS)
    inputs, logits = kserve_forward(path, Task.token_classification, TEXTS, special_tokens=False)
    assert prediction.predictions == [torch.argmax(r.unsqueeze(0), dim=2).tolist() for r in logits]
    with_special = run_processor(load_processor(path, Task.token_classification), TEXTS)
    assert len(with_special.predictions[0][0]) == len(prediction.predictions[0][0]) + 2
