"""`make bench`'s smoke run, as CI runs it: the real harness, real servers, short windows.

`python -m benchmarks.run --quick` on the encoder (ceiling, baseline, hf-runtime, paired
rounds) and huggingface generation (raw generate(), streams, arrivals, short chats, paired
rounds). Nothing here asserts on speed: only that every part ran, answered correctly and was
reported.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.core.settings import REPO_ROOT


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench-quick")
    command = [
        sys.executable, "-m", "benchmarks.run", "--quick", "--variants", "none",
        "--dtype", "float32", "--concurrency", "1,4", "--backends", "huggingface",
        "--streams", "1,2", "--out-dir", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


def test_encoder_phase_measured_every_server(quick_results: tuple[dict, str]) -> None:
    results, _ = quick_results
    encoder = results["encoder"]
    assert encoder["ceiling"]["float32"]["best_sentences_per_s"] > 0
    runs = {run["server"]: run for run in encoder["runs"]}
    assert {"baseline", "hf-runtime"} <= set(runs)
    ours = runs["hf-runtime"]
    assert ours["answer_cosine_vs_in_process"] > 0.99
    assert [level["concurrency"] for level in ours["levels"]] == [1, 4]
    assert all(level["errors"] == 0 and level["requests"] > 0 for level in ours["levels"])
    # The batches it formed come from its /metrics.
    assert all(level["mean_batch"] >= 1 for level in ours["levels"])
    (paired,) = encoder["paired"]
    assert paired["ours"] == "hf-runtime" and paired["theirs"] == "ceiling"
    assert len(paired["ratios"]) == 1 and paired["median"] > 0


def test_generation_phase_measured_raw_and_served(quick_results: tuple[dict, str]) -> None:
    results, _ = quick_results
    generation = results["generation"]
    assert [lv["batch"] for lv in generation["raw_generate"]["levels"]] == [1, 8]
    (run,) = generation["runs"]
    assert run["backend"] == "huggingface" and "error" not in run
    assert all(level["errors"] == 0 for level in run["levels"])
    assert run["simultaneous"]["ratio_p50_vs_lone"] > 0
    assert run["short_chats"]["done"] == run["short_chats"]["chats"]
    assert [row["streams"] for row in generation["paired"]] == [1, 8]
    assert all(row["median"] > 0 for row in generation["paired"])


def test_report_names_paired_targets(quick_results: tuple[dict, str]) -> None:
    results, markdown = quick_results
    names = [target["target"] for target in results["targets"]]
    assert "c=4 throughput vs ceiling (float32) (paired, median of 1)" in names
    assert "c=4 throughput vs ceiling (float32)" not in names  # replaced by the paired one
    assert "#### Paired rounds" in markdown and "| target | wanted |" in markdown
    assert Path(results["settings"]["out_dir"]).exists()


def test_prefix_cache_phase_ran_and_is_reported(quick_results: tuple[dict, str]) -> None:
    results, summary = quick_results
    phase = results["prefix_cache"]
    (row,) = phase["rounds"]
    assert row["warm_reused_tokens"] > 0 and row["cold_s"] > 0 and row["warm_s"] > 0
    assert "Prefix cache: time to first token" in summary
    assert any(t["target"].startswith("prefix cache") for t in results["targets"])


def test_route_overhead_times_every_encoder_route() -> None:
    from benchmarks.phases import route_overhead

    for route in route_overhead.ROUTES:
        result = asyncio.run(route_overhead.measure(route, 16))
        assert result["route"] == route and result["cpu_us_per_request"] > 0
