"""The onnxruntime backend in this process: accuracy against torch and speed, per variant.

MiniLM (and its encoder under the precision benchmark's seeded 3-label head, for labels) is
loaded through each backend's own loader, as the server loads it, and run through the
backends' shared path (tokenize, pad, forward, mean pooling, L2 normalisation), no batcher:
  accuracy on the precision benchmark's 200 varied texts against torch float32: largest
    absolute difference, smallest and mean cosine, label agreement, largest logit difference;
  speed: batches of 1/8/32/64 short sentences, every variant timed in each round
    (phases/precision.py's interleaving), the median per-round speed-up over torch float32.
The ONNX Runtime variants include the session's graph optimisation levels, which is how the
backend's default (all) was chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.precision_texts import TEXTS
from benchmarks.phases.precision import (
    ACCURACY_BATCH,
    classifier_dir,
    label_accuracy,
    speedup_table,
)
from benchmarks.phases.precision import measure_speed as interleaved_speed

REFERENCE = "torch float32"
# name -> (backend, ModelConfig settings); the first is the reference.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("huggingface", {}),
    "onnxruntime float32": ("onnxruntime", {}),
    "onnxruntime int8": ("onnxruntime", {"quantization": "int8_dynamic"}),
    "torch int8": ("huggingface", {"quantization": "int8_dynamic"}),
}
# Speed only: the session's other graph optimisation levels.
LEVELS = ("extended", "basic", "disable")
BATCH_SIZES = (1, 8, 32, 64)


def load_encoder(model_dir: Path, task: str, backend: str, settings: dict[str, Any]) -> Any:
    """The backend's encoder for `model_dir`, through its registered loader."""
    from hf_runtime.backends.registry import get_backend
    from hf_runtime.config import ModelConfig
    from hf_runtime.sources import resolve_source
    from hf_runtime.tasks.registry import Task

    config = ModelConfig(model_dir=str(model_dir), task=task, backend=backend, **settings)
    parts = asyncio.run(get_backend(backend).load(config, resolve_source(config), Task(task)))
    return parts.encoder


def run_batch(encoder: Any, texts: Sequence[str], pooled: bool) -> Any:
    """Normalised mean-pooled embeddings, or logits, through the backends' shared path."""
    import numpy as np
    import torch

    from hf_runtime.backends import ForwardItem, ForwardSpec, NormalizeModule

    spec = ForwardSpec(("mean",), (NormalizeModule(),)) if pooled else ForwardSpec()
    if pooled:
        encoder.prepare(spec)
    items = [ForwardItem(encoding) for encoding in encoder.tokenize(list(texts))]
    return torch.from_numpy(np.stack(encoder.forward(items, spec)))


def run_all(encoder: Any, texts: Sequence[str], pooled: bool) -> Any:
    import torch

    step = ACCURACY_BATCH
    parts = [run_batch(encoder, texts[i : i + step], pooled) for i in range(0, len(texts), step)]
    return torch.cat(parts)


def embedding_accuracy(reference: Any, got: Any) -> dict[str, float]:
    import torch

    cosine = torch.nn.functional.cosine_similarity(reference, got, dim=1)
    return {
        "max_abs_diff": float((got - reference).abs().max()),
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
    }


def measure(
    quick: bool,
    *,
    embed_dir: Path,
    sizes: Sequence[int] = BATCH_SIZES,
    texts: Sequence[str] = TEXTS,
) -> dict[str, Any]:
    """Accuracy per variant and speed per variant and batch size (`embed_dir`: MiniLM, or a
    tiny model in tests)."""
    embedders = {
        name: load_encoder(embed_dir, "text_embedding", backend, settings)
        for name, (backend, settings) in VARIANTS.items()
    }
    reference = run_all(embedders[REFERENCE], texts, True)
    accuracy = {
        name: {"embedding": embedding_accuracy(reference, run_all(encoder, texts, True))}
        for name, encoder in embedders.items()
    }
    cls_dir = classifier_dir(embed_dir)
    cls_reference = None
    for name, (backend, settings) in VARIANTS.items():
        classifier = load_encoder(cls_dir, "sequence_classification", backend, settings)
        logits = run_all(classifier, texts, False)
        cls_reference = logits if cls_reference is None else cls_reference
        accuracy[name]["classification"] = label_accuracy(cls_reference, logits)
    runners: dict[str, Callable[[list[str]], Any]] = {
        ("float32" if name == REFERENCE else name): (
            lambda batch, e=encoder: run_batch(e, batch, True)
        )
        for name, encoder in embedders.items()
    }
    for level in LEVELS:
        session = {"onnxruntime": {"graph_optimization_level": level}}
        encoder = load_encoder(embed_dir, "text_embedding", "onnxruntime", session)
        runners[f"onnxruntime float32, {level} optimisations"] = lambda batch, e=encoder: run_batch(
            e, batch, True
        )
    speed = interleaved_speed(runners, rounds=3 if quick else 9, sizes=sizes)
    return {"texts": len(texts), "accuracy": accuracy, "speed": speed}


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [
        f"Accuracy against torch float32 on {results['texts']} varied texts (MiniLM "
        "embeddings, mean-pooled and normalised; its encoder under a seeded 3-label head for "
        "labels):",
        "",
        "| variant | max abs diff | min cosine | mean cosine | labels agree | max logit diff |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in results["accuracy"].items():
        emb, cls = values["embedding"], values["classification"]
        lines.append(
            f"| {name} | {emb['max_abs_diff']:.2e} | {emb['min_cosine']:.6f} | "
            f"{emb['mean_cosine']:.6f} | {cls['label_agreement']:.1%} | "
            f"{cls['max_abs_logit_diff']:.2e} |"
        )
    speed = results["speed"]
    others = list(speed["rows"][0]["speedup"]) if speed["rows"] else []
    lines += speedup_table(speed, others, "torch float32 in this process", "torch float32")
    return lines
