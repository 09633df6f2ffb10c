"""The onnxruntime backend against the huggingface backend on tiny models: every encoder task
within 1e-4 of torch (same tokenizing, padding and post-processing; ONNX Runtime's float32
arithmetic in another order), sentence-transformers modules and prompts as torch applies them,
and the int8 option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_runtime.backends.onnxruntime.encoder_backend import load_onnx_encoder
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions
from hf_runtime.tasks.processors import make_processor
from hf_runtime.tasks.registry import Task
from tests.backends.onnxruntime.conftest import LoopRunner, requires_onnxruntime
from tests.encoder_support import load_processor, model_config, source_for
from tests.st_checkpoints import (
    CHECKPOINTS,
    SPARSE_CHECKPOINTS,
    build_sparse_checkpoint,
    build_st_checkpoint,
)
from tests.tiny_models import build_bert_mlm

pytestmark = requires_onnxruntime

TOLERANCE = 1e-4
TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "a", "paris is in france"]
MASKED = ["the capital of france is [MASK] .", "[MASK] love this movie", "hello [MASK]"]
TASK_MODELS = {
    Task.text_embedding: "bert-embed",
    Task.sequence_classification: "bert-seq-cls",
    Task.token_classification: "bert-ner",
    Task.fill_mask: "bert-mlm",
    Task.rerank: "bert-cross-encoder",
}


def onnx_processor(path: Path, task: Task, **flags: Any) -> EncoderTaskProcessor:
    config = model_config(path, backend="onnxruntime", **flags)
    backend = load_onnx_encoder(config, source_for(path), task)
    return make_processor(task, backend, ProcessorOptions.from_config(config), path)


def forward(processor: EncoderTaskProcessor, task: Task) -> tuple[list[Any], Any]:
    """The backend's float outputs for the test inputs, and the processor's answer."""
    backend = processor.backend
    if task is Task.rerank:
        encodings = backend.tokenize_pairs(["what is paris"] * len(TEXTS), TEXTS)
    else:
        texts = MASKED if task is Task.fill_mask else TEXTS
        encodings = backend.tokenize(processor.decode_instances(texts))
    outputs = backend.forward(processor.forward_items(encodings), processor.forward_spec)
    return outputs, processor.postprocess(encodings, outputs)


@pytest.mark.parametrize("task", list(TASK_MODELS), ids=lambda t: t.value)
def test_every_encoder_task_is_within_1e_4_of_torch(
    task: Task, tiny_models: dict[str, Path], onnx_cache: Path
) -> None:
    path = tiny_models[TASK_MODELS[task]]
    expected, expected_answer = forward(load_processor(path, task), task)
    got, answer = forward(onnx_processor(path, task), task)
    assert len(got) == len(expected)
    for ours, torch_output in zip(got, expected, strict=True):
        assert ours.shape == torch_output.shape
        np.testing.assert_allclose(ours, torch_output, atol=TOLERANCE, rtol=0)
    if task is Task.rerank:  # scores
        np.testing.assert_allclose(answer.predictions, expected_answer.predictions, atol=TOLERANCE)
    elif task is not Task.text_embedding:  # labels, tokens and entities: the same answer
        assert answer.predictions == expected_answer.predictions


def test_sentence_transformers_modules_and_prompts_as_on_torch(
    tmp_path_factory: pytest.TempPathFactory, onnx_cache: Path, run: LoopRunner
) -> None:
    """A Dense, Normalize and prompts whose tokens are not pooled, through the served model:
    the vectors of SentenceTransformer.encode, with and without a named prompt."""
    from sentence_transformers import SentenceTransformer

    from tests.loading import load_on

    name = "dense-exclude-prompt-normalize"
    folder = build_st_checkpoint(tmp_path_factory.mktemp("st") / name, CHECKPOINTS[name])
    config = model_config(folder, backend="onnxruntime")
    served = run(load_on("onnxruntime", config, source_for(folder), Task.text_embedding))
    reference = SentenceTransformer(str(folder), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(run(served.embed(TEXTS)).embeddings, expected, atol=TOLERANCE)
    by_name = run(served.embed(TEXTS, prompt_name="doc")).embeddings
    other = reference.encode(TEXTS, prompt_name="doc", normalize_embeddings=True)
    np.testing.assert_allclose(by_name, other, atol=TOLERANCE)
    run(served.aclose())


def test_sparse_embeddings_equal_sparse_encoder(
    tmp_path_factory: pytest.TempPathFactory, onnx_cache: Path, run: LoopRunner
) -> None:
    """A SPLADE checkpoint (sum of log1p_relu, the legacy MLMTransformer): the masked-LM
    logits from ONNX Runtime, pooled as on torch, give SparseEncoder.encode's vectors."""
    from sentence_transformers import SparseEncoder

    from tests.loading import load_on

    name = "splade-sum-log1p-relu-legacy"
    root = tmp_path_factory.mktemp("sparse")
    (root / "mlm").mkdir()
    build_bert_mlm(root / "mlm")
    folder = build_sparse_checkpoint(root / name, SPARSE_CHECKPOINTS[name], root / "mlm")
    config = model_config(folder, backend="onnxruntime")
    served = run(load_on("onnxruntime", config, source_for(folder), Task.sparse_embedding))
    expected = SparseEncoder(str(folder), device="cpu").encode(TEXTS).to_dense().numpy()
    dense = np.array(run(served.embed(TEXTS)).embeddings)
    np.testing.assert_allclose(dense, expected, atol=TOLERANCE, rtol=0)
    run(served.aclose())


def test_weighted_layer_pooling_is_refused_at_load(
    tmp_path_factory: pytest.TempPathFactory, onnx_cache: Path
) -> None:
    name = "weighted-layers-cls+mean-prompts"
    folder = build_st_checkpoint(tmp_path_factory.mktemp("st") / name, CHECKPOINTS[name])
    with pytest.raises(ConfigError, match="WeightedLayerPooling.*backend: huggingface"):
        onnx_processor(folder, Task.text_embedding)


def test_int8_dynamic_quantizes_the_layers_once(
    tiny_models: dict[str, Path], onnx_cache: Path
) -> None:
    path = tiny_models["bert-seq-cls"]
    processor = onnx_processor(path, Task.sequence_classification, quantization="int8_dynamic")
    assert processor.backend.onnx_file.path.name == "model.int8.onnx"
    import onnx

    graph = onnx.load(str(processor.backend.onnx_file.path)).graph
    quantized = [node.name for node in graph.node if node.op_type == "MatMulInteger"]
    assert quantized and all("/layer" in name for name in quantized)  # not the head
    float_outputs, _ = forward(onnx_processor(path, Task.sequence_classification), Task.rerank)
    int8_outputs, _ = forward(processor, Task.rerank)
    for ours, reference in zip(int8_outputs, float_outputs, strict=True):
        np.testing.assert_allclose(ours, reference, atol=0.05)  # lossy, but close
    again = onnx_processor(path, Task.sequence_classification, quantization="int8_dynamic")
    assert again.backend.onnx_file.path == processor.backend.onnx_file.path
