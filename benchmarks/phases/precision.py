"""Precision benchmark: `python -m benchmarks.precision [--quick] [--compile] [--out-dir DIR]`.

MiniLM (the default embedding model) is loaded through hf-runtime's own loader once per
opt-in precision: float32 (the reference: what `dtype: auto` gives), `dtype: bfloat16` and
`quantization: int8_dynamic`. For each it measures, in this process (no HTTP, no batcher):
  accuracy on 200 fixed, varied texts (core/precision_texts.py) against float32:
    embeddings: largest absolute difference, smallest and mean cosine similarity, and how far
    a text's embedding moves between being embedded alone and inside its batch of 20;
    classification (MiniLM's encoder under a seeded 3-label head): label agreement and the
    largest absolute logit difference;
  speed: tokenize + one forward pass + pooling for batches of 1/8/32/64 short sentences,
    every variant timed in turn with float32 in each round; the median per-round ratio.
`--compile` adds torch.compile (inductor, dynamic shapes) and torch.compile with freezing
(constant-folded, oneDNN-prepacked weights), measured only: hf-runtime does not offer them
(they did not beat eager by a real margin on the 2-core machine; see the README).
Writes <out-dir>/precision.json and precision.md (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.machine import machine_info
from benchmarks.core.precision_texts import TEXTS
from benchmarks.core.settings import RESULTS_DIR
from benchmarks.core.workload import minilm_dir, sentence

BATCH_SIZES = (1, 8, 32, 64)
ACCURACY_BATCH = 20
NUM_LABELS = 3
VARIANTS: dict[str, dict[str, Any]] = {  # name -> ModelConfig settings
    "float32": {},
    "bfloat16": {"dtype": "bfloat16"},
    "int8_dynamic": {"quantization": "int8_dynamic"},
}
COMPILED = ("compile", "compile+freezing")


def classifier_dir(base: Path | None = None) -> Path:
    """MiniLM's encoder under a seeded 3-label head (built once under the cache). Its labels
    mean nothing; whether a precision flips them is what it measures."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertForSequenceClassification

    base = base or minilm_dir()
    cache = Path(os.environ.get("HF_RUNTIME_CACHE_DIR") or Path.home() / ".cache" / "hf-runtime")
    out = cache / ("bench-minilm-classifier" if base == minilm_dir() else f"bench-{base.name}-cls")
    if (out / "config.json").is_file():
        return out
    encoder = AutoModel.from_pretrained(base)
    config = encoder.config
    config.num_labels = NUM_LABELS
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(encoder.state_dict(), strict=False)  # the head stays seeded
    model.eval().save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def load_encoder(model_dir: Path, task: str, settings: dict[str, Any]) -> Any:
    """hf-runtime's encoder backend for `model_dir`, loaded as the server loads it."""
    from hf_runtime.backends.huggingface.loader import load_encoder_parts
    from hf_runtime.config import ModelConfig
    from hf_runtime.sources import resolve_source
    from hf_runtime.tasks.registry import Task

    config = ModelConfig(model_dir=str(model_dir), task=task, **settings)
    return load_encoder_parts(config, resolve_source(config), Task(task)).encoder


def run_batch(encoder: Any, texts: Sequence[str], model: Any = None) -> Any:
    """Pooled, L2-normalised embeddings (a bare encoder) or logits (a classifier), float32."""
    import torch

    inputs = encoder.tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=encoder.max_length,
        return_tensors="pt",
    )
    with torch.inference_mode():
        output = (encoder.model if model is None else model)(**inputs)
        if hasattr(output, "logits"):
            return output.logits.float()
        hidden = output.last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1)


def run_all(encoder: Any, texts: Sequence[str], batch: int, model: Any = None) -> Any:
    import torch

    parts = [run_batch(encoder, texts[i : i + batch], model) for i in range(0, len(texts), batch)]
    return torch.cat(parts)


def embedding_accuracy(
    reference: Any, encoder: Any, texts: Sequence[str], model: Any = None
) -> dict[str, Any]:
    import torch

    got = run_all(encoder, texts, ACCURACY_BATCH, model)
    alone = run_all(encoder, texts, 1, model)
    cosine = torch.nn.functional.cosine_similarity(reference, got, dim=1)
    return {
        "max_abs_diff": float((got - reference).abs().max()),
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
        "alone_vs_batch_max_abs_diff": float((got - alone).abs().max()),
    }


def label_accuracy(reference: Any, logits: Any) -> dict[str, Any]:
    agree = int((reference.argmax(1) == logits.argmax(1)).sum())
    return {
        "label_agreement": agree / len(reference),
        "labels_changed": len(reference) - agree,
        "max_abs_logit_diff": float((logits - reference).abs().max()),
    }


def measure_speed(
    runners: dict[str, Callable[[list[str]], Any]], rounds: int, sizes: Sequence[int]
) -> dict[str, Any]:
    """Per size: float32's median ms per batch and each variant's median speed-up over it,
    both timed in every round so a burst of other work hits them alike."""
    batches = {size: [sentence(i) for i in range(size)] for size in sizes}
    for run in runners.values():  # warm each shape (and let a compiled variant compile)
        for batch in batches.values():
            run(batch)
            run(batch)
    times: dict[tuple[str, int], list[float]] = {(n, s): [] for n in runners for s in sizes}
    for _ in range(rounds):
        for size, batch in batches.items():
            calls = max(2, 32 // size)
            for name, run in runners.items():
                started = time.perf_counter()
                for _ in range(calls):
                    run(batch)
                times[(name, size)].append((time.perf_counter() - started) / calls)
    rows = []
    for size in sizes:
        base = times[("float32", size)]
        rows.append(
            {
                "batch_size": size,
                "float32_ms": round(statistics.median(base) * 1000, 3),
                "speedup": {
                    name: round(
                        statistics.median(
                            b / t for b, t in zip(base, times[(name, size)], strict=True)
                        ),
                        3,
                    )
                    for name in runners
                    if name != "float32"
                },
            }
        )
    return {"rounds": rounds, "rows": rows}


def speedup_table(
    speed: dict[str, Any], others: Sequence[str], baseline: str, column: str
) -> list[str]:
    """Markdown lines of `measure_speed`'s result: per batch size, the float32 runner's ms
    (headed `column`) and each of `others`' speed-up over it (`baseline` in the caption)."""
    lines = [
        "",
        f"Speed-up over {baseline} (median of {speed['rounds']} interleaved rounds; tokenize + "
        "forward + pool, short sentences):",
        "",
        f"| batch | {column} ms | " + " | ".join(others) + " |",
        "|---|---|" + "---|" * len(others),
    ]
    for row in speed["rows"]:
        ratios = " | ".join(f"{row['speedup'][n]:.2f}x" for n in others)
        lines.append(f"| {row['batch_size']} | {row['float32_ms']:.2f} | {ratios} |")
    return lines


def compiled_models(model: Any) -> dict[str, Any]:
    """torch.compile variants of a float32 model, for measurement only."""
    import copy

    import torch

    plain = torch.compile(copy.deepcopy(model), dynamic=True)
    frozen = torch.compile(copy.deepcopy(model), dynamic=True, options={"freezing": True})
    return dict(zip(COMPILED, (plain, frozen), strict=True))


def measure(
    quick: bool,
    with_compile: bool = False,
    *,
    embed_dir: Path | None = None,
    sizes: Sequence[int] = BATCH_SIZES,
    texts: Sequence[str] = TEXTS,
) -> dict[str, Any]:
    """Everything the tables show; `embed_dir` (default MiniLM) lets tests use a tiny model."""
    import torch

    embed_dir = embed_dir or minilm_dir()
    cls_dir = classifier_dir(embed_dir)
    embedders = {name: load_encoder(embed_dir, "text_embedding", s) for name, s in VARIANTS.items()}
    reference_encoder = embedders["float32"]
    extra = compiled_models(reference_encoder.model) if with_compile else {}
    reference = run_all(reference_encoder, texts, ACCURACY_BATCH)
    accuracy: dict[str, Any] = {}
    for name, encoder in embedders.items():
        accuracy[name] = {"embedding": embedding_accuracy(reference, encoder, texts)}
    for name, model in extra.items():
        accuracy[name] = {
            "embedding": embedding_accuracy(reference, reference_encoder, texts, model)
        }
    classifiers = {
        name: load_encoder(cls_dir, "sequence_classification", s) for name, s in VARIANTS.items()
    }
    cls_reference = run_all(classifiers["float32"], texts, ACCURACY_BATCH)
    for name, encoder in classifiers.items():
        logits = run_all(encoder, texts, ACCURACY_BATCH)
        accuracy[name]["classification"] = label_accuracy(cls_reference, logits)
    runners: dict[str, Callable[[list[str]], Any]] = {
        name: (lambda batch, e=encoder: run_batch(e, batch)) for name, encoder in embedders.items()
    }
    for name, model in extra.items():
        runners[name] = lambda batch, m=model: run_batch(reference_encoder, batch, m)
    speed = measure_speed(runners, rounds=3 if quick else 9, sizes=sizes)
    from hf_runtime.backends.huggingface.precision import cpu_features

    features = sorted(
        cpu_features() & {"avx512_bf16", "amx_bf16", "avx512_vnni", "amx_int8", "avx512_fp16"}
    )
    return {
        "model": "all-MiniLM-L6-v2" if embed_dir == minilm_dir() else embed_dir.name,
        "texts": len(texts),
        "machine": {
            **machine_info(),
            "cpu_features": features,
            "quantized_engine": torch.backends.quantized.engine,
        },
        "accuracy": accuracy,
        "speed": speed,
        "quick": quick,
    }


def markdown(results: dict[str, Any]) -> str:
    accuracy, speed = results["accuracy"], results["speed"]
    names = list(accuracy)
    lines = [
        f"Accuracy vs float32 on {results['texts']} varied texts (MiniLM embeddings; MiniLM "
        "encoder + seeded 3-label head for labels):",
        "",
        "| variant | max abs diff | min cosine | mean cosine | alone vs batch | labels agree "
        "| max logit diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        emb = accuracy[name]["embedding"]
        cls = accuracy[name].get("classification")
        labels = f"{cls['label_agreement']:.1%}" if cls else "-"
        logit = f"{cls['max_abs_logit_diff']:.2e}" if cls else "-"
        lines.append(
            f"| {name} | {emb['max_abs_diff']:.2e} | {emb['min_cosine']:.5f} | "
            f"{emb['mean_cosine']:.5f} | {emb['alone_vs_batch_max_abs_diff']:.2e} | {labels} "
            f"| {logit} |"
        )
    others = [n for n in names if n != "float32"]
    lines += speedup_table(speed, others, "float32", "float32")
    machine = results["machine"]
    lines += [
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} cores, torch "
        f"{machine['torch']} ({machine['torch_threads']} threads), features "
        f"{', '.join(machine['cpu_features']) or 'none'}, quantized engine "
        f"{machine['quantized_engine']}, load {machine['load_avg_at_start']} at start.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 timing rounds instead of 9")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = measure(args.quick, args.compile)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "precision.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out_dir / "precision.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
