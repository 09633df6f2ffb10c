"""A classifier's class scores as vLLM's /classify and /pooling return them.

vLLM applies the classifier's activation to the head's logits unless the request says
`use_activation: false` (see `vllm.model_executor.layers.pooler.activations.get_act_fn`),
chosen from the checkpoint's config.json like transformers' loss: `problem_type` regression
keeps the logits, multi_label_classification takes sigmoids, a single-label head with one
label a sigmoid and with more a softmax; a sentence-transformers CrossEncoder's own
`activation_fn` (Identity: raw logits) wins over the label rule. A rerank model's head says
the same as its rerank scores (sigmoid, or the raw logit), so /classify equals /rerank.
The best class's name is config.json's id2label, transformers' LABEL_<i> where it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hf_runtime.tasks.base import softmax
from hf_runtime.tasks.hf_config import hf_config_or_empty

Activation = Literal["softmax", "sigmoid", "identity"]


@dataclass(frozen=True)
class ClassifierHead:
    """What turns one input's logits into its class scores and its label."""

    activation: Activation
    labels: dict[int, str] = field(default_factory=dict)

    def scores(self, logits: np.ndarray, activate: bool = True) -> np.ndarray:
        values = np.asarray(logits, dtype=np.float32).reshape(-1)
        if not activate or self.activation == "identity":
            return values
        if self.activation == "sigmoid":
            return np.float32(1) / (np.float32(1) + np.exp(-values))
        return np.asarray(softmax(values), dtype=np.float32)

    def label(self, scores: np.ndarray) -> str | None:
        return self.labels.get(int(np.argmax(scores)))


def _labels(config: dict[str, Any]) -> dict[int, str]:
    raw = config.get("id2label")
    if isinstance(raw, dict) and raw:
        return {int(k): str(v) for k, v in raw.items()}
    count = config.get("num_labels")
    count = count if isinstance(count, int) and count > 0 else 2  # transformers' default head
    return {i: f"LABEL_{i}" for i in range(count)}


def _st_activation(config: dict[str, Any]) -> str | None:
    """The CrossEncoder activation config.json names (vLLM reads only config.json)."""
    section = config.get("sentence_transformers")
    name = section.get("activation_fn") if isinstance(section, dict) else None
    name = name or config.get("sbert_ce_default_activation_function")
    return str(name).rsplit(".", 1)[-1] if name else None


def read_classifier_head(model_path: Path | None) -> ClassifierHead:
    """A sequence classifier's head, by vLLM's rule (see the module's docstring)."""
    config = hf_config_or_empty(model_path)
    labels = _labels(config)
    problem = config.get("problem_type")
    if problem == "regression":
        return ClassifierHead("identity", labels)
    if problem == "multi_label_classification":
        return ClassifierHead("sigmoid", labels)
    if problem != "single_label_classification" and _st_activation(config) == "Identity":
        return ClassifierHead("identity", labels)
    return ClassifierHead("sigmoid" if len(labels) < 2 else "softmax", labels)


def cross_encoder_head(model_path: Path | None, raw_scores: bool) -> ClassifierHead:
    """A rerank model's one-label head, scored as its rerank scores are."""
    return ClassifierHead(
        "identity" if raw_scores else "sigmoid", _labels(hf_config_or_empty(model_path))
    )
