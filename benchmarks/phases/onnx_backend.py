"""The onnxruntime backend's benchmark: `python -m benchmarks.onnx_backend [--quick]
[--concurrency 1,64] [--rounds 3] [--window 5] [--threads N] [--no-infinity] [--no-http]
[--no-inprocess] [--out-dir DIR]`.

Measured on this machine and in this run (see phases/onnx_inprocess.py and onnx_paired.py):
  1. in this process: accuracy of onnxruntime float32 / int8 (and torch int8) against torch
     float32, and the speed-up of each, and of the session's graph optimisation levels;
  2. over HTTP: hf-runtime on onnxruntime against Infinity (infinity-emb 0.0.78, installed
     in a venv of its own) and against hf-runtime on torch, in paired rounds at each
     concurrency, after checking every server's vectors against the torch server's.
Writes <out-dir>/onnx.json and onnx.md (default benchmarks/results); prints the Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from benchmarks.core.machine import log, machine_info
from benchmarks.core.settings import RESULTS_DIR, parse_settings
from benchmarks.core.workload import minilm_dir
from benchmarks.phases import onnx_inprocess, onnx_paired


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_backend", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round (a smoke run)")
    parser.add_argument("--concurrency", default="1,64", help="levels (default 1,64)")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds (default 3)")
    parser.add_argument("--window", type=float, default=None, help="seconds (default 5)")
    parser.add_argument("--no-infinity", action="store_true", help="skip the Infinity peer")
    parser.add_argument("--no-http", action="store_true", help="in-process part only")
    parser.add_argument("--no-inprocess", action="store_true", help="HTTP part only")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="OMP_NUM_THREADS for this process and every server, Infinity's too (default: the "
        "cores); 1 keeps an oversubscribed, shared machine's numbers stable",
    )  # fmt: skip
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:  # before torch is imported here; servers inherit it
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    quick = bool(args.quick)
    out_dir = (args.out_dir or (RESULTS_DIR / "quick.tmp" if quick else RESULTS_DIR)).resolve()
    rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    s = parse_settings(
        ["--concurrency", args.concurrency, "--paired-rounds", str(rounds),
         "--out-dir", str(out_dir), *(["--quick"] if quick else [])]
    )  # fmt: skip
    window = args.window if args.window is not None else (2.0 if quick else 5.0)
    s = dataclasses.replace(s, level_s=window, windows=1)
    results: dict[str, object] = {"machine": machine_info()}
    lines = []
    if not args.no_inprocess:
        log("onnxruntime in process: accuracy and speed")
        inprocess = onnx_inprocess.measure(quick, embed_dir=minilm_dir())
        results["inprocess"] = inprocess
        lines += onnx_inprocess.markdown(inprocess) + [""]
    if not args.no_http:
        log("onnxruntime over HTTP: paired rounds")
        paired = onnx_paired.paired_phase(
            s, s.concurrencies, not args.no_infinity, results.get("inprocess")
        )
        results["paired"] = paired
        lines += onnx_paired.markdown(paired) + [""]
    import onnxruntime

    machine = machine_info()
    lines.append(
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, load "
        f"{machine['load_avg_at_start']} at start; torch {machine['torch']}, onnxruntime "
        f"{onnxruntime.__version__}."
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "onnx.json").write_text(json.dumps(results, indent=2) + "\n")
    text = "\n".join(lines) + "\n"
    (out_dir / "onnx.md").write_text(text)
    print("\n" + text, flush=True)
    return 0
