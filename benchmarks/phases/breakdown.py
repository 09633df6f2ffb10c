"""Where an encoder request's CPU goes, in-process: BentoML's middlewares and hf-runtime's
own path (for this tree and --before's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.core import names
from benchmarks.core.machine import log
from benchmarks.core.settings import Settings
from benchmarks.core.workload import ENCODER_MODEL_NAME
from benchmarks.peers.servers import config_subset, source_tree
from benchmarks.phases.asgi_costs import measure_all
from benchmarks.phases.path_profile import run_profile


def cpu_breakdown(s: Settings) -> dict[str, Any]:
    """CPU per request, in-process: each BentoML middleware (phases/asgi_costs.py), and
    hf-runtime's own path (phases/path_profile.py) for this tree and --before's."""
    log("encoder: CPU per request of each BentoML middleware (in-process)")
    breakdown: dict[str, Any] = {"bentoml_middlewares": measure_all(calls=2000, repeats=2)}
    log(f"  {breakdown['bentoml_middlewares']['middleware_cost_us']}")
    subset = config_subset(s.config, [ENCODER_MODEL_NAME], s.out_dir / "logs.tmp" / "minilm.yaml")
    trees: dict[str, Path | None] = {names.HF_RUNTIME: None}
    if s.before:
        trees[names.HF_RUNTIME_BEFORE] = source_tree(s.before, s.out_dir / "before.tmp")
    breakdown["own_path"] = {}
    for name, tree in trees.items():
        log(f"encoder: CPU per request of {name}'s own path (in-process, no HTTP)")
        try:
            profile = run_profile(subset, tree)
        except (RuntimeError, ValueError, OSError) as exc:
            profile = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        breakdown["own_path"][name] = profile
        log(f"  {profile.get('cpu_us_per_request', profile.get('error'))}")
    return breakdown
