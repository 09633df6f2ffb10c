"""Opt-in precisions on the huggingface backend: dtype bfloat16 and quantization int8_dynamic.

Tolerances (tiny random-weight models, hidden 64; documented in the README's precision
section): bf16 and int8_dynamic outputs stay within 0.01 absolute of float32 and unit
embeddings keep a cosine similarity of at least 0.999 (measured: 1.5e-3 and 0.99999).
MiniLM's real, larger drift is benchmarks/precision.py's table.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hf_runtime.backends.checkpoint import resolve_dtype
from hf_runtime.backends.huggingface.loader import load_encoder_parts, load_generation_parts
from hf_runtime.backends.huggingface.precision import (
    INT8_DYNAMIC,
    check_half_precision,
    native_on_cpu,
    quantizable_linears,
    quantize_int8_dynamic,
)
from hf_runtime.backends.vllm.config import reject_huggingface_only_options
from hf_runtime.config import ModelConfig, load_config
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.registry import Task
from tests.encoder_support import model_config, source_for
from tests.loading import load_encoder_model

TEXTS = [
    "John Smith works at Google in Paris",
    "hello world",
    "I love this movie, it is great. " * 6,
    "the quick brown fox jumps over the lazy dog",
]
ABS_TOLERANCE = 0.01
MIN_COSINE = 0.999
BF16_CPU = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
OLD_CPU = frozenset({"avx2", "fma3"})
# Encoders load on CUDA when there is one, where int8_dynamic is (rightly) a ConfigError.
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="int8_dynamic is CPU-only")


def quantized_names(model: torch.nn.Module) -> list[str]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return [n for n, m in model.named_modules() if isinstance(m, DynamicLinear)]


async def load(path, task: Task, **flags):
    return await load_encoder_model(model_config(path, **flags), source_for(path), task)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---------------------------------------------------------------- configuration


def test_quantization_is_opt_in_and_checked():
    assert ModelConfig(model_dir="m").quantization is None
    assert ModelConfig(model_dir="m", quantization="int8_dynamic").quantization == INT8_DYNAMIC
    env = {"HF_RUNTIME_MODEL_DIR": "m", "HF_RUNTIME_QUANTIZATION": "int8_dynamic"}
    assert load_config(env=env).models[0].quantization == INT8_DYNAMIC
    for bad in ("int8", "int4_dynamic", "fp8", "auto", "true"):
        with pytest.raises(ConfigError, match="quantization"):
            load_config(env={"HF_RUNTIME_MODEL_DIR": "m", "HF_RUNTIME_QUANTIZATION": bad})
    with pytest.raises(ConfigError, match="dtype"):
        load_config(env={"HF_RUNTIME_MODEL_DIR": "m", "HF_RUNTIME_DTYPE": "int8"})


def test_auto_never_picks_a_faster_precision(tiny_models, monkeypatch):
    # Even on a CPU that computes bf16 natively, auto keeps KServe's rule.
    monkeypatch.setattr("hf_runtime.backends.huggingface.precision.cpu_features", lambda: BF16_CPU)
    assert resolve_dtype("auto", {}, on_cuda=False) is torch.float32
    assert resolve_dtype("auto", {"torch_dtype": "float32"}, on_cuda=False) is torch.float32
    path = tiny_models["bert-embed"]
    parts = load_encoder_parts(model_config(path), source_for(path), Task.text_embedding)
    assert parts.encoder.dtype is (torch.float16 if torch.cuda.is_available() else torch.float32)
    assert quantized_names(parts.encoder.model) == []


# ---------------------------------------------------------------- int8_dynamic


@cpu_only
async def test_int8_embeddings_load_serve_and_stay_close(tiny_models):
    path = tiny_models["bert-embed"]
    reference = await load(path, Task.text_embedding)
    quantized = await load(path, Task.text_embedding, quantization="int8_dynamic")
    names = quantized_names(quantized.encoder.model)
    assert names and all("pooler" not in n for n in names)
    assert len(names) == 6 * 2  # q, k, v, attention output, intermediate, output per layer
    expected = np.array((await reference.embed(TEXTS)).embeddings)
    got = np.array((await quantized.embed(TEXTS)).embeddings)
    assert np.abs(got - expected).max() < ABS_TOLERANCE
    assert cosines(got, expected).min() > MIN_COSINE
    prediction = await quantized.predict(TEXTS)  # KServe V1's path serves it too
    np.testing.assert_allclose(prediction.predictions, got, atol=1e-6)
    await reference.aclose()
    await quantized.aclose()


@cpu_only
async def test_int8_classifier_keeps_its_head_in_float(tiny_models):
    path = tiny_models["bert-seq-cls"]
    flags = {"return_raw_logits": True}
    reference = await load(path, Task.sequence_classification, **flags)
    quantized = await load(path, Task.sequence_classification, quantization="int8_dynamic", **flags)
    model = quantized.encoder.model
    assert isinstance(model.classifier, torch.nn.Linear)
    assert isinstance(model.bert.pooler.dense, torch.nn.Linear)
    assert all(n.startswith("bert.encoder.") for n in quantized_names(model))
    expected = logit_rows((await reference.predict(TEXTS)).predictions)
    got = logit_rows((await quantized.predict(TEXTS)).predictions)
    assert np.abs(got - expected).max() < ABS_TOLERANCE
    await reference.aclose()
    await quantized.aclose()


def logit_rows(predictions: list[dict[int, float]]) -> np.ndarray:
    """return_raw_logits answers {label index: logit} per text."""
    return np.array([[row[k] for k in sorted(row)] for row in predictions])


def test_int8_uses_full_range_activations_only_with_vnni(tiny_models):
    import transformers

    path = tiny_models["bert-embed"]
    for features, full in ((BF16_CPU, True), (OLD_CPU, False)):
        model = transformers.AutoModel.from_pretrained(str(path)).eval()
        count = quantize_int8_dynamic(model, torch.device("cpu"), torch.float32, features)
        assert count == len(quantized_names(model)) == 12
        kinds = {type(m).__name__ for m in model.modules()}
        assert ("FullRangeDynamicLinear" in kinds) is full
        with torch.inference_mode():
            model(input_ids=torch.tensor([[2, 10, 11, 3]]))  # both kinds run


def test_int8_rejects_what_it_cannot_run(tiny_models):
    import transformers

    path = tiny_models["bert-embed"]
    model = transformers.AutoModel.from_pretrained(str(path)).eval()
    with pytest.raises(ConfigError, match="CPU only"):
        quantize_int8_dynamic(model, torch.device("cuda"), torch.float32)
    with pytest.raises(ConfigError, match="set dtype: float32"):
        quantize_int8_dynamic(model, torch.device("cpu"), torch.bfloat16)
    with pytest.raises(ConfigError, match="set dtype: float32|CPU only"):
        load_encoder_parts(
            model_config(path, dtype="bfloat16", quantization="int8_dynamic"),
            source_for(path),
            Task.text_embedding,
        )
    assert quantized_names(model) == []  # nothing half-converted


def test_int8_is_for_encoder_tasks_only(tiny_models):
    path = tiny_models["gpt2-chat"]
    config = model_config(path, quantization="int8_dynamic")
    with pytest.raises(ConfigError, match="encoder tasks only"):
        load_generation_parts(config, source_for(path), Task.text_generation)


async def test_vllm_backend_rejects_int8(tiny_models):
    from hf_runtime.backends.vllm.loader import load_vllm

    config = ModelConfig(model_dir="m", backend="vllm", quantization="int8_dynamic")
    with pytest.raises(ConfigError, match="not available on the vllm backend"):
        reject_huggingface_only_options(config)
    reject_huggingface_only_options(ModelConfig(model_dir="m", backend="vllm"))
    path = tiny_models["gpt2-chat"]
    with pytest.raises(ConfigError, match="not available on the vllm backend"):
        await load_vllm(
            model_config(path, quantization="int8_dynamic"), source_for(path), Task.text_generation
        )


def test_quantizable_linears_are_the_encoder_body(tiny_models):
    import transformers

    model = transformers.AutoModelForMaskedLM.from_pretrained(str(tiny_models["bert-mlm"]))
    names = quantizable_linears(model)
    assert len(names) == 12
    assert all(n.startswith("bert.encoder.layer.") for n in names)  # not the vocab projection


# ---------------------------------------------------------------- bfloat16


async def test_bf16_loads_serves_and_stays_close(tiny_models):
    path = tiny_models["bert-embed"]
    reference = await load(path, Task.text_embedding)
    half = await load(path, Task.text_embedding, dtype="bfloat16")
    assert half.encoder.dtype is torch.bfloat16
    expected = np.array((await reference.embed(TEXTS)).embeddings)
    got = np.array((await half.embed(TEXTS)).embeddings)
    assert np.abs(got - expected).max() < ABS_TOLERANCE
    assert cosines(got, expected).min() > MIN_COSINE
    await reference.aclose()
    await half.aclose()


def test_half_precision_without_hardware_support_warns(caplog):
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="hf_runtime"):
        assert check_half_precision(torch.bfloat16, cpu, BF16_CPU)
        assert check_half_precision(torch.float32, cpu, OLD_CPU)
        assert check_half_precision(torch.float16, torch.device("cuda"), OLD_CPU)
        assert not caplog.records
        assert not check_half_precision(torch.bfloat16, cpu, OLD_CPU)
    assert "dtype bfloat16 on a CPU without AVX512_BF16" in caplog.text
    assert "set dtype: float32" in caplog.text
    assert not native_on_cpu(torch.float16, BF16_CPU)
    assert native_on_cpu(torch.bfloat16, frozenset({"bf16"}))  # aarch64's name
