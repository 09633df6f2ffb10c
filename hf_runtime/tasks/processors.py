"""Which processor serves each encoder task: the one table a new encoder task is added to."""

from __future__ import annotations

from pathlib import Path

from hf_runtime.backends import EncoderBackend
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions
from hf_runtime.tasks.names import Task


def make_processor(
    task: Task, backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> EncoderTaskProcessor:
    """The task processor for an encoder task (imports only the one needed). `model_path` is
    the checkpoint folder, where some tasks read their settings (pooling modes)."""
    if task is Task.sequence_classification:
        from hf_runtime.tasks.sequence_classification import (
            SequenceClassificationProcessor,
            read_label_config,
        )

        id2label, multi_label = read_label_config(model_path)
        return SequenceClassificationProcessor(backend, options, id2label, multi_label)
    if task is Task.token_classification:
        from hf_runtime.tasks.sequence_classification import read_label_config
        from hf_runtime.tasks.token_classification import TokenClassificationProcessor

        id2label, _ = read_label_config(model_path)
        return TokenClassificationProcessor(backend, options, id2label)
    if task is Task.fill_mask:
        from hf_runtime.tasks.fill_mask import FillMaskProcessor

        return FillMaskProcessor(backend, options)
    if task is Task.text_embedding:
        from hf_runtime.tasks.text_embedding import TextEmbeddingProcessor, read_pooling_modes

        return TextEmbeddingProcessor(backend, options, read_pooling_modes(model_path))
    if task is Task.rerank:
        from hf_runtime.tasks.rerank import RerankProcessor, checkpoint_raw_scores

        raw = options.rerank_raw_scores or checkpoint_raw_scores(model_path)
        return RerankProcessor(backend, options, raw_scores=raw)
    raise ConfigError(f"task {task.value} is not an encoder task")
