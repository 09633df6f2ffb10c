"""The machine a run measured on (recorded with every result), and the benchmark's log line."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


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
