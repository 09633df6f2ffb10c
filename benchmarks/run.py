"""The throughput benchmark: `python -m benchmarks.run [--quick] [--only encoder|generation]`.

One invocation measures, on this machine and in this run:
  encoder (all-MiniLM-L6-v2, one short sentence per KServe V1 predict request)
    1. the ceiling: the model's own best throughput in this process (peers/ceiling.py);
    2. the per-request baseline server (peers/baseline_server.py);
    3. BentoML's adaptive batching (peers/bentoml_batching_service.py), unless --variants none;
    4. hf-runtime under a real `bentoml serve service:HFRuntime` with the default config;
  each at every --concurrency, for every --dtype (baseline and variants at the first only);
  generation (SmolLM2-135M-Instruct, streaming /v1/chat/completions) per --backends, and
  with huggingface the prefix cache's time to first token, in-process (phases/prefix_cache.py).
Results go to <out-dir>/latest.json, latest.md and throughput.png; the Markdown is printed.
Exit status 1 when a server failed to start or to answer (the results are still written).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.core.machine import log, machine_info
from benchmarks.core.settings import REPO_ROOT, parse_settings
from benchmarks.phases.encoder import encoder_phase
from benchmarks.phases.generation import generation_phase
from benchmarks.phases.prefix_cache import FULL, QUICK, prefix_cache_phase
from benchmarks.reports.plots import plot
from benchmarks.reports.summary import markdown
from benchmarks.reports.targets import evaluate_targets


def _portable(value: Any) -> Any:
    """Paths inside the repository relative to it, so committed results name no machine."""
    if not isinstance(value, Path):
        return value
    return str(value.relative_to(REPO_ROOT)) if value.is_relative_to(REPO_ROOT) else str(value)


def write_outputs(results: dict[str, Any], out_dir: Path) -> str:
    """latest.json, latest.md and throughput.png under `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = markdown(results)
    (out_dir / "latest.md").write_text(summary)
    plot(results, out_dir / "throughput.png")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    s = parse_settings(argv, description=__doc__)
    if s.torch_threads:  # before torch is imported here; servers inherit it
        os.environ["OMP_NUM_THREADS"] = str(s.torch_threads)
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {k: _portable(v) for k, v in asdict(s).items()},
    }
    log(f"machine: {results['machine']}")
    if "encoder" in s.phases:
        results["encoder"] = encoder_phase(s)
    if "generation" in s.phases:
        results["generation"] = generation_phase(s)
    if "generation" in s.phases and "huggingface" in s.backends:
        results["prefix_cache"] = prefix_cache_phase(*(QUICK if s.quick else FULL))
    results["targets"] = evaluate_targets(results)
    results["duration_s"] = round(time.monotonic() - started, 1)
    summary = write_outputs(results, s.out_dir)
    print("\n" + summary, flush=True)
    log(f"done in {results['duration_s']} s; results in {s.out_dir}")
    runs = [
        run for phase in ("encoder", "generation") for run in results.get(phase, {}).get("runs", [])
    ]
    return 1 if any(run.get("error") for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
