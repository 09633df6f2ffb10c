"""The throughput benchmark: `python -m benchmarks.run [--quick] [--only encoder|generation]`.

One invocation measures, on this machine and in this run:
  encoder (all-MiniLM-L6-v2, one short sentence per KServe V1 predict request)
    1. the ceiling: the model's own best throughput in this process (ceiling.py);
    2. the per-request baseline server (baseline_server.py);
    3. BentoML's adaptive batching (bentoml_batching_service.py), unless --variants none;
    4. hf-runtime under a real `bentoml serve service:HFRuntime` with the default config;
  each at every --concurrency, for every --dtype (baseline and variants at the first only);
  generation (SmolLM2-135M-Instruct, streaming /v1/chat/completions) per --backends.
Results go to <out-dir>/latest.json, latest.md and throughput.png; the Markdown is printed.
Exit status 1 when a server failed to start or to answer (the results are still written).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.phases import encoder_phase, generation_phase, log
from benchmarks.servers import REPO_ROOT
from benchmarks.settings import parse_settings


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    import bentoml
    import torch
    import transformers

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bentoml": bentoml.__version__,
        "python": platform.python_version(),
        # Other work on the machine skews every number: recorded so a reader can tell.
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _portable(value: Any) -> Any:
    """Paths inside the repository relative to it, so committed results name no machine."""
    if not isinstance(value, Path):
        return value
    return str(value.relative_to(REPO_ROOT)) if value.is_relative_to(REPO_ROOT) else str(value)


def write_outputs(results: dict[str, Any], out_dir: Path) -> str:
    """latest.json, latest.md and throughput.png under `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = report.markdown(results)
    (out_dir / "latest.md").write_text(summary)
    report.plot(results, out_dir / "throughput.png")
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
    results["targets"] = report.evaluate_targets(results)
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
