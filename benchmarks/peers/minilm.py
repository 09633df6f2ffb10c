"""MiniLM loaded straight with transformers: what the ceiling, the baseline and the BentoML
variant run. Embeddings are mean-pooled over real tokens and L2-normalised, the same vectors
KServe's huggingfaceserver (and hf-runtime) return for the text_embedding task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DTYPES = ("float32", "bfloat16")


def load_minilm(model_dir: Path, dtype: str = "float32") -> tuple[Any, Any]:
    """(tokenizer, model) in eval mode with `dtype` weights."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    model.eval()
    return tokenizer, model


def embed(tokenizer: Any, model: Any, texts: Sequence[str]) -> Any:
    """Tokenize, run one forward pass over the whole batch, pool: a float32 [n, 384] tensor."""
    import torch

    encoded = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**encoded).last_hidden_state.float()
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def read_instances(body: bytes) -> list[str]:
    """The texts of a V1 predict body ({"instances": ["text", ...]}), the way the baseline and
    the BentoML variant read it; ValueError saying what is wrong (their 400's error)."""
    try:
        payload: Any = json.loads(body)
        instances = payload["instances"]
    except (ValueError, KeyError, TypeError):
        raise ValueError('expected {"instances": ["text", ...]}') from None
    if not isinstance(instances, list) or not all(isinstance(t, str) for t in instances):
        raise ValueError('"instances" must be a list of strings')
    if not instances:
        raise ValueError('"instances" is empty')
    return instances
