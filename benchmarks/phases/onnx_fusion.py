"""The onnxruntime backend's offline fusion and thread spinning, in this process.

MiniLM through the onnxruntime backend's loader four ways: the unfused export
(`onnxruntime.fusion: off`, the reference), the fused file (`fusion: auto`, the default), and
each with `allow_spinning: true`. Every variant runs tokenize + forward + mean pooling on
batches of 1/8/32/64 short sentences in every round (phases/precision.py's interleaving), and
the table gives the median per-round speed-up over the unfused file. Writes nothing; prints
markdown. `python -m benchmarks.onnx_fusion [--rounds N]`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from benchmarks.core.workload import minilm_dir
from benchmarks.phases.onnx_inprocess import BATCH_SIZES, load_encoder, run_batch
from benchmarks.phases.precision import measure_speed, speedup_table

REFERENCE = "unfused"
VARIANTS: dict[str, dict[str, Any]] = {
    REFERENCE: {"fusion": "off"},
    "fused": {"fusion": "auto"},
    "unfused, spinning": {"fusion": "off", "allow_spinning": True},
    "fused, spinning": {"fusion": "auto", "allow_spinning": True},
}


def measure(rounds: int, sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Any]:
    runners = {}
    for name, section in VARIANTS.items():
        encoder = load_encoder(
            minilm_dir(), "text_embedding", "onnxruntime", {"onnxruntime": section}
        )
        label = "float32" if name == REFERENCE else name  # measure_speed's reference name
        runners[label] = lambda batch, e=encoder: run_batch(e, batch, True)
    return measure_speed(runners, rounds=rounds, sizes=sizes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    speed = measure(args.rounds)
    others = [name for name in VARIANTS if name != REFERENCE]
    print("\n".join(speedup_table(speed, others, "the unfused file", REFERENCE)))
    return 0
