from __future__ import annotations

import pytest
import torch

from hf_runtime.errors import ConfigError, InvalidInput
from hf_runtime.tasks.base import ProcessorOptions
from hf_runtime.tasks.fill_mask import FillMaskProcessor
from hf_runtime.tasks.registry import Task
from tests.encoder_support import kserve_forward, load_processor, run_processor
from tests.tiny_models import bert_vocab

MASK_ID = bert_vocab()["[MASK]"]
TEXTS = ["paris is the [MASK] of france", "the [MASK] sat on the [MASK]"]


@pytest.fixture(scope="module")
def reference(tiny_models):
    return kserve_forward(tiny_models["bert-mlm"], Task.fill_mask, TEXTS)


def _mask_rows(inputs, logits, row):
    """KServe: the logits at every [MASK] position of text `row`."""
    positions = (inputs["input_ids"][row] == MASK_ID).nonzero(as_tuple=True)[0]
    return logits[row, positions]


def test_default_decodes_argmax_at_every_mask_joined(tiny_models, reference):
    from transformers import AutoTokenizer

    inputs, logits = reference
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models["bert-mlm"]))
    processor = load_processor(tiny_models["bert-mlm"], Task.fill_mask)
    prediction = run_processor(processor, TEXTS)

    expected = [
        tokenizer.decode(_mask_rows(inputs, logits, row).argmax(dim=-1)) for row in range(2)
    ]
    assert prediction.predictions == expected
    assert len(prediction.predictions[1].split()) == 2  # two masks, one string
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape, tensor.data) == ("BYTES", [2], expected)


def test_probabilities_are_4dp_strings_over_the_vocabulary(tiny_models):
    path = tiny_models["bert-mlm"]
    texts = ["paris is the [MASK] of france", "hello [MASK]"]
    inputs, logits = kserve_forward(path, Task.fill_mask, texts)
    processor = load_processor(path, Task.fill_mask, return_probabilities=True)
    prediction = run_processor(processor, texts)

    vocab = logits.shape[-1]
    for row in range(2):
        probs = torch.softmax(_mask_rows(inputs, logits, row), dim=-1)
        expected = [[{t: f"{p.item():.4f}"} for t, p in enumerate(mask)] for mask in probs]
        assert prediction.predictions[row] == expected
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape) == ("BYTES", [2, 1, vocab])
    assert tensor.data[0] == str(prediction.predictions[0][0][0])
    assert processor.output_specs()[0].shape == [-1, -1, vocab]


def test_raw_logits(tiny_models, reference):
    inputs, logits = reference
    processor = load_processor(tiny_models["bert-mlm"], Task.fill_mask, return_raw_logits=True)
    prediction = run_processor(processor, TEXTS)
    for row in range(2):
        expected = _mask_rows(inputs, logits, row)
        got = prediction.predictions[row]
        assert len(got) == expected.shape[0]
        for mask_got, mask_expected in zip(got, expected, strict=True):
            values = [next(iter(d.values())) for d in mask_got]
            assert [next(iter(d)) for d in mask_got[:3]] == [0, 1, 2]
            assert values == pytest.approx(mask_expected.tolist(), abs=1e-5)


def test_ragged_mask_counts_work_in_v1_but_not_as_a_v2_tensor(tiny_models):
    processor = load_processor(tiny_models["bert-mlm"], Task.fill_mask, return_probabilities=True)
    prediction = run_processor(processor, TEXTS)  # one mask, then two masks
    assert [len(p) for p in prediction.predictions] == [1, 2]
    with pytest.raises(InvalidInput, match="different numbers of mask tokens"):
        prediction.tensors[0].as_dict()


def test_text_without_mask_token_is_invalid(tiny_models):
    processor = load_processor(tiny_models["bert-mlm"], Task.fill_mask)
    with pytest.raises(InvalidInput, match=r"instance 1 has no \[MASK\] token"):
        run_processor(processor, ["the [MASK] sat", "no mask here"])


def test_mask_cut_off_by_max_model_len_is_invalid(tiny_models):
    processor = load_processor(tiny_models["bert-mlm"], Task.fill_mask, max_model_len=6)
    with pytest.raises(InvalidInput, match="cut at 6 tokens"):
        run_processor(processor, ["the dog sat on the mat and the [MASK]"])


def test_tokenizer_without_mask_token_is_a_config_error(tiny_models):
    backend = load_processor(tiny_models["bert-mlm"], Task.fill_mask).backend

    class NoMask:
        mask_token = None
        mask_token_id = None

    with pytest.raises(ConfigError, match="mask token"):
        FillMaskProcessor(NoMask(), ProcessorOptions())  # type: ignore[arg-type]
    assert backend.mask_token == "[MASK]"
