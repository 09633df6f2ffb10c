"""The prefix-cache phase's table and target (phases/prefix_cache.py)."""

from __future__ import annotations

from typing import Any

GOAL_WARM_TO_COLD = 0.3  # the goal: a warm request's TTFT <= 0.3x a cold one's


def prefix_cache_markdown(results: dict[str, Any]) -> list[str]:
    rows = results["rounds"]
    out = [
        "",
        "#### Prefix cache: time to first token (huggingface engine, SmolLM2-135M, float32)",
        "",
        f"A chat whose first ~{results['prefix_tokens']} prompt tokens (a system prompt of tool "
        "definitions) were sent recently (warm) against one whose system prompt is new (cold), "
        "and a new one on an engine without the cache (cold, off); paired rounds, back to back, "
        "default `generation.prefix_cache`.",
        "",
        "| round | prompt tokens | reused | cold s (storing its blocks) | warm s | cold, off s "
        "| warm / cold | cold / cold off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, row in enumerate(rows, start=1):
        out.append(
            f"| {index} | {row['prompt_tokens']} | {row['warm_reused_tokens']} | "
            f"{row['cold_s']:.3f} ({row['cold_store_s']:.3f}) | {row['warm_s']:.3f} | "
            f"{row['cold_off_s']:.3f} | "
            f"{row['warm_to_cold']:.3f} | {row['cold_to_cold_off']:.3f} |"
        )
    cache = ", ".join(
        f"{key.removeprefix('prefix_cache_')} {value}"
        for key, value in results.get("cache", {}).items()
    )
    ratio = results["warm_to_cold_median"]
    met = "met" if ratio <= GOAL_WARM_TO_COLD else "**not met**"
    out += [
        "",
        f"Median warm / cold **{ratio:.3f}** (goal <= {GOAL_WARM_TO_COLD}: {met}); "
        "what a miss costs: storing its blocks took "
        f"{results['store_share_of_cold_median']:.2%} of a cold request's time (median), "
        "and cold with the cache / without it (two runs, so machine noise included) "
        f"{results['cold_to_cold_off_median']:.3f}. Cache after the rounds: {cache}.",
    ]
    return out


def markdown(results: dict[str, Any]) -> str:
    """The phase's own report (`python -m benchmarks.prefix_cache`)."""
    return "\n".join(prefix_cache_markdown(results)).lstrip("\n") + "\n"


def prefix_cache_target(results: dict[str, Any]) -> dict[str, Any]:
    """The goal's row in the run's target table."""
    ratio = results["warm_to_cold_median"]
    return {
        "target": f"prefix cache: TTFT, first ~{results['prefix_tokens']} tokens seen / cold",
        "wanted": f"<= {GOAL_WARM_TO_COLD}x",
        "measured": ratio,
        "met": ratio <= GOAL_WARM_TO_COLD,
    }
