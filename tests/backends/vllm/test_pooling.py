"""Encoder tasks on vLLM's pooling runner give the huggingface backend's KServe bodies.

`minilm` (vLLM, huggingface) and the raw-logits `classifier` are conftest.py's shared engines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.model import Embedder, Pooler, ServedModel, TextGenerator, require_capability
from hf_runtime.tasks.registry import Task
from hf_runtime.types import PoolingOptions
from tests.backends.vllm.conftest import LoopRunner, load_hf, requires_vllm

pytestmark = [requires_vllm, pytest.mark.vllm]

TEXTS = ["Hello world, this is a test.", "the quick brown fox", "Paris is the capital of France"]


def test_embedding_model_surface(minilm: tuple[Any, Any]) -> None:
    ours, theirs = minilm
    assert isinstance(ours, ServedModel) and ours.ready and ours.capability(TextGenerator) is None
    meta, reference = ours.metadata(), theirs.metadata()
    assert meta.platform == "vllm"
    assert (meta.inputs, meta.outputs) == (reference.inputs, reference.outputs)


def test_minilm_predictions_equal_huggingface(minilm: tuple[Any, Any], run: LoopRunner) -> None:
    ours, theirs = minilm
    mine, reference = run(ours.predict(TEXTS)), run(theirs.predict(TEXTS))
    np.testing.assert_allclose(mine.predictions, reference.predictions, atol=1e-5, rtol=0)
    (tensor,), (expected,) = mine.tensors, reference.tensors
    assert (tensor.name, tensor.datatype, tensor.shape) == ("output-0", "FP64", [3, 384])
    assert (expected.datatype, expected.shape) == (tensor.datatype, tensor.shape)
    np.testing.assert_allclose(tensor.data, expected.data, atol=1e-5, rtol=0)


def test_minilm_embeddings_equal_huggingface(minilm: tuple[Any, Any], run: LoopRunner) -> None:
    ours, theirs = minilm
    for dimensions in (None, 64):
        mine = run(ours.embed(TEXTS, dimensions))
        reference = run(theirs.embed(TEXTS, dimensions))
        np.testing.assert_allclose(mine.embeddings, reference.embeddings, atol=1e-5, rtol=0)
        assert mine.prompt_tokens == reference.prompt_tokens
        assert len(mine.embeddings[0]) == (dimensions or 384)
    ids = [[101, 7592, 2088, 102]]
    np.testing.assert_allclose(
        run(ours.embed(ids)).embeddings, run(theirs.embed(ids)).embeddings, atol=1e-5, rtol=0
    )
    # Semantics survive: the paraphrase is closer than the unrelated sentence.
    vectors = np.array(
        run(ours.embed(["A man is eating food.", "A man eats bread.", "A plane."])).embeddings
    )
    similar, unrelated = vectors[1] @ vectors[0], vectors[2] @ vectors[0]
    assert similar > unrelated + 0.3


def test_bad_embedding_inputs_are_invalid(minilm: tuple[Any, Any], run: LoopRunner) -> None:
    ours, _ = minilm
    with pytest.raises(InvalidInput):
        run(ours.embed([[10**7]]))
    with pytest.raises(InvalidInput):
        run(ours.embed(TEXTS, 10_000))


@pytest.mark.parametrize("flags", [{}, {"return_probabilities": True}, {"return_raw_logits": True}])
def test_classification_equals_huggingface(
    classifier: Any, run: LoopRunner, tiny_models: dict[str, Path], flags: dict[str, bool]
) -> None:
    """vLLM gives the raw logits; the shared processor turns them into each KServe form."""
    from hf_runtime.tasks.base import ProcessorOptions
    from hf_runtime.tasks.processors import make_processor

    folder = tiny_models["bert-seq-cls"]
    reference_model = load_hf(run, folder, Task.sequence_classification, **flags)
    try:
        options = ProcessorOptions(**flags)
        processor = make_processor(
            Task.sequence_classification, classifier.encoder, options, folder
        )
        encodings = classifier.encoder.tokenize(TEXTS)
        # forward blocks on the model's event loop: call it from a thread, as the batcher does
        logits = run(
            asyncio.to_thread(
                classifier.encoder.forward,
                processor.forward_items(encodings),
                processor.forward_spec,
            )
        )
        mine = processor.postprocess(encodings, logits)
        reference = run(reference_model.predict(TEXTS))
    finally:
        run(reference_model.aclose())
    if flags.get("return_raw_logits"):
        for got, expected in zip(mine.predictions, reference.predictions, strict=True):
            assert got.keys() == expected.keys()
            assert list(got.values()) == pytest.approx(list(expected.values()), abs=1e-5)
    else:
        assert mine.predictions == reference.predictions
        assert mine.tensors[0].as_dict() == reference.tensors[0].as_dict()


def test_classifier_serves_raw_logits(classifier: Any, run: LoopRunner) -> None:
    prediction = run(classifier.predict(TEXTS))
    assert len(prediction.predictions) == 3
    assert all(set(p) == {0, 1} for p in prediction.predictions)
    assert prediction.tensors[0].datatype == "BYTES"
    with pytest.raises(Unsupported):
        require_capability(classifier, Embedder)


# ---------------------------------------------------------------- vLLM's pooling API (Pooler)


def test_pooling_an_embedding_model_equals_its_embeddings(
    minilm: tuple[Any, Any], run: LoopRunner
) -> None:
    """/pooling's vectors on vLLM are /v1/embeddings' and the huggingface backend's."""
    ours, theirs = minilm
    pooler = require_capability(ours, Pooler)
    assert pooler.pooling_task == "embed" and pooler.max_input_tokens == 128
    pooled, reference = run(pooler.pool(TEXTS)), run(theirs.capability(Pooler).pool(TEXTS))
    assert pooled.outputs == run(ours.embed(TEXTS)).embeddings
    np.testing.assert_allclose(pooled.outputs, reference.outputs, atol=1e-5, rtol=0)
    assert pooled.prompt_tokens == reference.prompt_tokens
    cut = PoolingOptions(truncate_tokens=4, truncation_side="left", activation=False)
    mine, theirs_cut = run(pooler.pool(TEXTS, cut)), run(theirs.capability(Pooler).pool(TEXTS, cut))
    np.testing.assert_allclose(mine.outputs, theirs_cut.outputs, atol=1e-5, rtol=0)
    assert mine.prompt_tokens == 4 * len(TEXTS)


def test_truncated_embeddings_with_dimensions_equal_huggingface(
    minilm: tuple[Any, Any], run: LoopRunner
) -> None:
    """What /v1/embeddings asks the pooler for with truncate_prompt_tokens and dimensions."""
    ours, theirs = minilm
    cut = PoolingOptions(truncate_tokens=4, truncation_side="left", dimensions=8)
    mine = run(require_capability(ours, Pooler).pool(TEXTS, cut))
    reference = run(theirs.capability(Pooler).pool(TEXTS, cut))
    assert [len(vector) for vector in mine.outputs] == [8] * len(TEXTS)
    np.testing.assert_allclose(mine.outputs, reference.outputs, atol=1e-5, rtol=0)
    assert mine.prompt_tokens == 4 * len(TEXTS)


def test_classify_equals_vllms_own_classify_pooler(classifier: Any, run: LoopRunner) -> None:
    """Our /classify scores (the raw logits, with vLLM's activation rule applied here) equal
    what vLLM's own classify pooler returns with its default activation."""
    from vllm.pooling_params import PoolingParams

    from hf_runtime.backends.vllm.async_llm import render_token_prompt

    pooler = require_capability(classifier, Pooler)
    assert pooler.pooling_task == "classify"
    result = run(pooler.pool(TEXTS))
    engine = classifier.encoder.engine

    async def vllm_classify(index: int, text: str) -> list[float]:
        ids = classifier.encoder.tokenize([text])[0].input_ids
        prompt = await render_token_prompt(engine, ids)
        async for output in engine.encode(prompt, PoolingParams(task="classify"), f"own-{index}"):
            data = output.outputs.data
        return [float(v) for v in data]

    for index, text in enumerate(TEXTS):
        expected = run(vllm_classify(index, text))
        assert result.outputs[index] == pytest.approx(expected, abs=1e-5)
    assert result.labels == [("NEGATIVE", "POSITIVE")[int(np.argmax(r))] for r in result.outputs]
