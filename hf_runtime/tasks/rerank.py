"""Rerank: a cross-encoder's relevance score for each (query, document) pair.

A cross-encoder is a `...ForSequenceClassification` checkpoint with ONE label that reads the
query and the document together (tokenised as a pair, `token_type_ids` marking the document).
Its score is sigmoid(logit), sentence-transformers' CrossEncoder default for one label, or the
raw logit (`rerank_raw_scores: true`, or a checkpoint whose sentence-transformers config says
its activation is Identity). V1 per pair: the score; V2: FP64 [n]; inputs `text`, `text_pair`.

`is_cross_encoder` decides whether a checkpoint is one, for task inference: a one-label
sequence classifier that sentence-transformers saved as a CrossEncoder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.errors import ConfigError
from hf_runtime.tasks.base import (
    OUTPUT_NAME,
    EncoderTaskProcessor,
    ProcessorOptions,
    kserve_output_tensor,
)
from hf_runtime.tasks.class_scores import cross_encoder_head
from hf_runtime.tasks.hf_config import hf_config_or_empty
from hf_runtime.tasks.registry import Task
from hf_runtime.types import PAIR_INPUTS, Prediction, TensorSpec

logger = logging.getLogger("hf_runtime")

ST_CONFIG_FILE = "config_sentence_transformers.json"
# What sentence-transformers writes for a CrossEncoder: a `sentence_transformers` section in
# config.json (v3/v4), or its own config file with model_type CrossEncoder (v5).
ST_CONFIG_KEY = "sentence_transformers"
CROSS_ENCODER_TYPE = "CrossEncoder"
SIGMOID, IDENTITY = "Sigmoid", "Identity"


def label_count(hf_config: dict[str, Any]) -> int:
    """The classification head's labels, as transformers counts them (id2label wins)."""
    id2label = hf_config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    value = hf_config.get("num_labels")
    return value if isinstance(value, int) else 2  # transformers' default head


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        logger.warning("%s is not valid JSON; ignoring it", path)
        return None
    return data if isinstance(data, dict) else None


def _st_settings(model_path: Path, hf_config: dict[str, Any]) -> dict[str, Any] | None:
    """sentence-transformers' CrossEncoder settings, or None when it did not save this model
    as a CrossEncoder. A bi-encoder's own config file (with a modules.json) does not count."""
    section = hf_config.get(ST_CONFIG_KEY)
    if isinstance(section, dict):
        return section
    settings = _read_json(Path(model_path) / ST_CONFIG_FILE)
    if settings is None:
        return None
    if settings.get("model_type") == CROSS_ENCODER_TYPE:
        return settings
    return None if (Path(model_path) / "modules.json").is_file() else settings


def is_cross_encoder(model_path: Path, hf_config: dict[str, Any]) -> bool:
    """A one-label sequence classifier saved by sentence-transformers as a CrossEncoder."""
    architectures = hf_config.get("architectures") or []
    if not architectures or not str(architectures[0]).endswith("ForSequenceClassification"):
        return False
    return label_count(hf_config) == 1 and _st_settings(model_path, hf_config) is not None


def checkpoint_raw_scores(model_path: Path) -> bool:
    """Whether the checkpoint's CrossEncoder settings say its scores are the raw logits
    (activation Identity). Sigmoid, or nothing said, is sentence-transformers' default."""
    hf_config = hf_config_or_empty(model_path)
    settings = _st_settings(model_path, hf_config) or {}
    activation = str(settings.get("activation_fn") or SIGMOID).rsplit(".", 1)[-1]
    if activation not in (SIGMOID, IDENTITY):
        logger.warning(
            "cross-encoder activation %s is not supported; scoring with sigmoid (set "
            "rerank_raw_scores: true for the raw logits)",
            activation,
        )
    return activation == IDENTITY


def sigmoid(values: np.ndarray) -> np.ndarray:
    """torch.sigmoid in float32."""
    values = np.asarray(values, dtype=np.float32)
    return np.float32(1) / (np.float32(1) + np.exp(-values))


class RerankProcessor(EncoderTaskProcessor):
    task = Task.rerank

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        *,
        raw_scores: bool = False,
        id2label: dict[int, str] | None = None,
    ) -> None:
        super().__init__(backend, options)
        if backend.num_labels != 1:
            raise ConfigError(
                f"task rerank needs a cross-encoder: a sequence classifier with ONE label (one "
                f"relevance logit per pair); this checkpoint's head has {backend.num_labels} "
                "labels. Serve it with task: sequence_classification, or rerank with an "
                "embedding model (task: text_embedding scores by cosine similarity)"
            )
        self.raw_scores = raw_scores
        self.id2label = id2label or {}  # its one class's name (TEI's /predict, /info)

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        """One score per pair: sigmoid(logit), or the logit with raw scores."""
        logits = np.array([np.asarray(o, dtype=np.float32).reshape(-1)[0] for o in outputs])
        values = logits if self.raw_scores else sigmoid(logits)
        scores = [float(v) for v in values]
        return Prediction(scores, [kserve_output_tensor(scores)])

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name, "BYTES", [-1]) for name in PAIR_INPUTS]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(OUTPUT_NAME, "FP64", [-1])]


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> RerankProcessor:
    raw = options.rerank_raw_scores or checkpoint_raw_scores(model_path)
    from hf_runtime.tasks.sequence_classification import read_label_config

    id2label, _ = read_label_config(model_path)
    processor = RerankProcessor(backend, options, raw_scores=raw, id2label=id2label)
    processor.classifier_head = cross_encoder_head(model_path, raw)
    return processor
