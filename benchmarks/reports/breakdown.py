"""The CPU breakdown's Markdown (phases/breakdown.py): BentoML's middlewares and
hf-runtime's own path.
"""

from __future__ import annotations

from typing import Any

from benchmarks.reports.cells import row as _row


def breakdown_markdown(breakdown: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    middlewares = breakdown.get("bentoml_middlewares") or {}
    if middlewares.get("cpu_us_per_request"):
        lines += [
            "",
            "#### BentoML's per-request CPU, in-process (trivial route, microseconds)",
            "",
            "| app | CPU µs/request | this middleware costs |",
            "|---|---:|---:|",
        ]
        costs = middlewares.get("middleware_cost_us", {})
        for variant, us in middlewares["cpu_us_per_request"].items():
            cost = costs.get(variant[8:]) if variant.startswith("without ") else None
            lines.append(_row(variant, us, cost))
    own = breakdown.get("own_path") or {}
    profiles = {name: p for name, p in own.items() if p.get("cpu_us_per_request")}
    if profiles:
        names = list(profiles)
        categories = list(
            dict.fromkeys(c for p in profiles.values() for c in p["cpu_us_per_request"])
        )
        lines += [
            "",
            "#### hf-runtime's own CPU per V1 request, in-process (no HTTP, no BentoML; "
            "torch 1 thread; microseconds)",
            "",
            "| part | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for category in categories:
            values = [profiles[n]["cpu_us_per_request"].get(category) for n in names]
            lines.append(_row(category, *values))
        lines.append(_row("**total**", *[profiles[n]["cpu_us_per_request_total"] for n in names]))
        # The forward dominates and is the noisiest part on a shared machine: what hf-runtime
        # adds around it is the total without it.
        lines.append(_row("**all but the forward**", *[
            round(profiles[n]["cpu_us_per_request_total"]
                  - profiles[n]["cpu_us_per_request"].get("forward", 0.0), 1)
            for n in names
        ]))  # fmt: skip
        lines.append(
            _row(
                "requests/s in-process", *[profiles[n]["requests_per_s_in_process"] for n in names]
            )
        )
    return lines
