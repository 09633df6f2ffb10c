"""TEI's capabilities on vLLM's pooling runner equal the huggingface backend's: left
truncation, unpooled token states, class scores for texts and pairs (on conftest.py's shared
`classifier`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_runtime.tasks.registry import Task
from hf_runtime.types import TextPair, Truncation
from tests.backends.vllm.conftest import LoopRunner, load_vllm, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

LIMIT = 16
LONG = "the quick brown fox jumps over the lazy dog " * 3
LEFT = Truncation(True, "left")


@pytest.fixture(scope="module")
def embedder(run: LoopRunner, tiny_models: dict[str, Path]) -> Iterator[Any]:
    model = load_vllm(run, tiny_models["bert-embed"], Task.text_embedding, max_model_len=LIMIT)
    yield model
    run(model.aclose())


def test_left_truncation_and_token_states(embedder: Any, run: LoopRunner, tiny_models) -> None:
    path = tiny_models["bert-embed"]
    tokenizer = AutoTokenizer.from_pretrained(path, truncation_side="left")
    ids = tokenizer(LONG, truncation=True, max_length=LIMIT)["input_ids"]
    hf = AutoModel.from_pretrained(path).eval()
    with torch.inference_mode():
        states = hf(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    tokens = run(embedder.embed_tokens([LONG], truncation=LEFT))
    assert np.allclose(tokens.embeddings[0], states, atol=1e-4)
    vector = run(embedder.embed([LONG], truncation=LEFT, normalize=False)).embeddings[0]
    assert np.allclose(vector, states.mean(axis=0), atol=1e-4)


def test_classify_texts_and_pairs(classifier: Any, run: LoopRunner, tiny_models) -> None:
    path = tiny_models["bert-seq-cls"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    hf = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        text = hf(**tokenizer(["hello world"], return_tensors="pt")).logits[0].numpy()
        pair = hf(**tokenizer(["a query"], ["a document"], return_tensors="pt")).logits[0].numpy()
    result = run(
        classifier.classify(["hello world", TextPair("a query", "a document")], raw_scores=True)
    )
    assert np.allclose(result.scores[0], text, atol=1e-4)
    assert np.allclose(result.scores[1], pair, atol=1e-4)
