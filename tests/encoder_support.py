"""Helpers for encoder tests: load our backend/processors on a model folder, and compute what
KServe's huggingfaceserver would, directly with transformers (its algorithm, re-done in torch
here so tests compare against an independent computation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions
from hf_runtime.tasks.registry import Task
from hf_runtime.types import Prediction

MODEL_CLASSES = {
    Task.sequence_classification: "AutoModelForSequenceClassification",
    Task.token_classification: "AutoModelForTokenClassification",
    Task.fill_mask: "AutoModelForMaskedLM",
    Task.text_embedding: "AutoModel",
}


def source_for(path: Path) -> ResolvedSource:
    path = Path(path)
    return ResolvedSource(path, path, json.loads((path / "config.json").read_text()), "test")


def model_config(path: Path, **flags: Any) -> ModelConfig:
    return ModelConfig(model_dir=str(path), **flags)


def load_backend(path: Path, task: Task, **flags: Any):  # -> HFEncoderBackend
    from hf_runtime.backends.huggingface.encoder_backend import load_hf_encoder

    config = model_config(path, **flags)
    offsets = task is Task.token_classification and config.return_offsets_mapping
    return load_hf_encoder(config, source_for(path), task, return_offsets=offsets)


def load_processor(path: Path, task: Task, **flags: Any) -> EncoderTaskProcessor:
    from hf_runtime.tasks.processors import make_processor

    backend = load_backend(path, task, **flags)
    options = ProcessorOptions.from_config(model_config(path, **flags))
    return make_processor(task, backend, options, source_for(path).model_path)


def run_processor(processor: EncoderTaskProcessor, texts: Sequence[str]) -> Prediction:
    """One request through processor + backend, synchronously and without the batcher."""
    texts = processor.decode_instances(list(texts))
    encodings = processor.backend.tokenize(texts)
    items = processor.forward_items(encodings)
    outputs = processor.backend.forward(items, processor.forward_spec)
    return processor.postprocess(encodings, outputs)


def kserve_forward(
    path: Path,
    task: Task,
    texts: Sequence[str],
    *,
    lower_case: bool = True,
    special_tokens: bool = True,
    max_length: int | None = None,
    offsets: bool = False,
) -> tuple[Any, Any]:
    """(tokenizer output, logits or last_hidden_state) exactly as KServe's preprocess+predict."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), do_lower_case=lower_case)
    model = getattr(transformers, MODEL_CLASSES[task]).from_pretrained(str(path)).eval()
    if max_length is None:
        max_length = json.loads((Path(path) / "config.json").read_text())["max_position_embeddings"]
    inputs = tokenizer(
        list(texts),
        max_length=max_length,
        add_special_tokens=special_tokens,
        return_tensors="pt",
        padding=True,
        truncation=True,
        return_offsets_mapping=offsets,
    )
    feed = {k: v for k, v in inputs.items() if k != "offset_mapping"}
    with torch.no_grad():
        out = model(**feed, return_dict=True)
    result = out.last_hidden_state if task is Task.text_embedding else out.logits
    return inputs, result
