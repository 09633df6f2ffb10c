"""What TEI's routes ask of an encoder model, checked against transformers on tiny models:
left truncation (the end of the text and the special tokens kept, as transformers'
truncation_side="left"), per-request truncate, unpooled token states, class scores for texts
and pairs, and token spans (huggingface backend; tests/backends/vllm/test_tei_vllm.py runs the
same on vLLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_runtime.errors import TooLarge
from hf_runtime.runtime.encoder_model import EncoderModel
from hf_runtime.tasks.registry import Task
from hf_runtime.types import TextPair, Truncation
from tests.encoder_support import model_config, source_for
from tests.loading import load_encoder_model

LIMIT = 16
LONG = "the quick brown fox jumps over the lazy dog " * 3  # 29 tokens with [CLS]/[SEP]
LEFT = Truncation(True, "left")


def cut_ids(path: Path, text: str | tuple[str, str], side: str) -> list[int]:
    tokenizer = AutoTokenizer.from_pretrained(path, truncation_side=side)
    args = (text,) if isinstance(text, str) else text
    strategy = True if isinstance(text, str) else "only_second"
    return tokenizer(*args, truncation=strategy, max_length=LIMIT)["input_ids"]


async def load(path: Path, task: Task, **flags: Any) -> EncoderModel:
    config = model_config(path, max_model_len=LIMIT, **flags)
    return await load_encoder_model(config, source_for(path), task)


def test_left_truncation_keeps_the_end_and_the_special_tokens(tiny_models) -> None:
    from tests.encoder_support import load_backend

    path = tiny_models["bert-seq-cls"]
    backend = load_backend(path, Task.sequence_classification, max_model_len=LIMIT)
    (left,) = backend.tokenize([LONG], truncation_side="left")
    assert list(left.input_ids) == cut_ids(path, LONG, "left")
    (full,) = backend.tokenize([LONG], truncate=False)
    assert left.input_ids[0] == full.input_ids[0] and left.input_ids[-1] == full.input_ids[-1]
    assert left.input_ids[1:] == full.input_ids[-(LIMIT - 1) :]  # the end of the text
    (right,) = backend.tokenize([LONG])  # the default, and the tokenizer is left as it was
    assert list(right.input_ids) == cut_ids(path, LONG, "right")
    pair = ("a short query", LONG)
    (left_pair,) = backend.tokenize_pairs([pair[0]], [pair[1]], truncation_side="left")
    assert list(left_pair.input_ids) == cut_ids(path, pair, "left")


async def test_embed_truncation_and_token_states_match_transformers(tiny_models) -> None:
    path = tiny_models["bert-embed"]
    model = await load(path, Task.text_embedding)
    hf = AutoModel.from_pretrained(path).eval()

    def states(ids: list[int]) -> np.ndarray:
        with torch.inference_mode():
            return hf(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()

    left_ids = cut_ids(path, LONG, "left")
    expected = states(left_ids).mean(axis=0)
    expected /= np.linalg.norm(expected)
    (vector,) = (await model.embed([LONG], truncation=LEFT)).embeddings
    assert np.allclose(vector, expected, atol=1e-5)
    raw = (await model.embed([LONG], truncation=LEFT, normalize=False)).embeddings[0]
    assert np.allclose(raw, states(left_ids).mean(axis=0), atol=1e-5)
    tokens = await model.embed_tokens(["hello world", LONG], truncation=LEFT)
    short_ids = AutoTokenizer.from_pretrained(path)("hello world")["input_ids"]
    assert np.allclose(tokens.embeddings[0], states(short_ids), atol=1e-5)
    assert np.allclose(tokens.embeddings[1], states(left_ids), atol=1e-5)
    with pytest.raises(TooLarge, match="has 29 tokens"):
        await model.embed([LONG], truncation=Truncation(False))
    await model.aclose()


async def test_classify_texts_and_pairs_match_transformers(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    model = await load(path, Task.sequence_classification)
    tokenizer = AutoTokenizer.from_pretrained(path)
    hf = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        text_logits = hf(**tokenizer(["hello world"], return_tensors="pt")).logits[0]
        pair_logits = hf(**tokenizer(["a query"], ["a document"], return_tensors="pt")).logits[0]
    result = await model.classify(["hello world", TextPair("a query", "a document")])
    assert np.allclose(result.scores[0], torch.softmax(text_logits, -1).numpy(), atol=1e-5)
    assert np.allclose(result.scores[1], torch.softmax(pair_logits, -1).numpy(), atol=1e-5)
    raw = await model.classify(["hello world"], raw_scores=True)
    assert np.allclose(raw.scores[0], text_logits.numpy(), atol=1e-5)
    id2label = hf.config.id2label
    assert raw.labels == [id2label[i] for i in range(len(id2label))]
    with pytest.raises(TooLarge):
        await model.classify([TextPair("q", LONG)], truncation=Truncation(False))
    await model.aclose()


async def test_token_spans_and_decode_match_the_tokenizer(tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    model = await load(path, Task.sequence_classification)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = "Hello world"
    encoded = tokenizer(text, return_offsets_mapping=True)
    spans = await model.token_spans(text)
    assert [s.id for s in spans] == encoded["input_ids"]
    assert [s.special for s in spans] == [True] + [False] * (len(spans) - 2) + [True]
    assert [(s.start, s.stop) for s in spans[1:-1]] == [
        tuple(o) for o in encoded["offset_mapping"][1:-1]
    ]
    ids = encoded["input_ids"]
    assert await model.detokenize(ids, skip_special_tokens=True) == tokenizer.decode(
        ids, skip_special_tokens=True
    )
    await model.aclose()
