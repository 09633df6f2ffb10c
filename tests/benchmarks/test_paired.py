"""Paired rounds and the per-batch ceiling: the arithmetic the benchmark's targets rest on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchmarks.peers.raw_generate import serve_raw_generate
from benchmarks.phases.encoder import _mean_batch, batcher_totals
from benchmarks.phases.rounds import Pair, Side, alternate, summarize
from benchmarks.reports.encoder import ceiling_at
from benchmarks.reports.paired import paired_markdown, paired_targets
from benchmarks.reports.targets import evaluate_targets


def test_alternate_rotates_which_side_goes_first() -> None:
    calls: list[str] = []

    def side(name: str, value: float) -> Side:
        def measure() -> dict[str, float]:
            calls.append(name)
            return {"x": value}

        return Side(name, measure)

    values = alternate([side("a", 2.0), side("b", 1.0), side("c", 4.0)], rounds=4)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert values == {"a": [{"x": 2.0}] * 4, "b": [{"x": 1.0}] * 4, "c": [{"x": 4.0}] * 4}


def test_summarize_takes_per_round_ratios_and_their_median() -> None:
    values = {
        "ours": [{"tps": 90.0, "ttft": 100.0}, {"tps": 50.0, "ttft": 300.0}, {"tps": 100.0}],
        "theirs": [{"tps": 100.0, "ttft": 110.0}, {"tps": 40.0, "ttft": 150.0}, {"tps": 80.0}],
    }
    faster = summarize(Pair("ours", "theirs", "tps", "t", 1.0), values)
    assert faster["ratios"] == [0.9, 1.25, 1.25] and faster["median"] == 1.25
    assert faster["met"] is True
    # Lower is better: theirs / ours, and a round missing the metric is left out.
    ttft = summarize(Pair("ours", "theirs", "ttft", "t", 0.95, lower_is_better=True), values)
    assert ttft["ratios"] == [1.1, 0.5] and ttft["median"] == 0.8 and ttft["met"] is False


def test_summarize_without_any_round_has_no_verdict() -> None:
    empty = summarize(Pair("a", "b", "x", "t", 1.0), {"a": [{}], "b": [{"x": 1.0}]})
    assert empty["median"] is None and empty["met"] is None


def _paired_row(target: str, median: float, goal: float = 1.0) -> dict:
    return {
        "ours": "huggingface", "theirs": "raw", "metric": "tokens_per_s", "streams": 8,
        "ours_values": [1.0], "theirs_values": [1.0], "ratios": [median], "median": median,
        "target": target, "goal": goal, "met": median >= goal,
    }  # fmt: skip


def test_a_paired_median_replaces_the_sequential_ratio_it_measures_again() -> None:
    name = "huggingface tokens/s, 8 streams vs raw generate() batch 8"
    generation = {
        "raw_generate": {"levels": [{"batch": 8, "tokens_per_s": 100.0}]},
        "runs": [{"backend": "huggingface", "levels": [
            {"concurrency": 1, "tokens_per_s": 10.0}, {"concurrency": 8, "tokens_per_s": 50.0},
        ]}],
        "paired": [_paired_row(name, 1.02)],
    }  # fmt: skip
    targets = evaluate_targets({"generation": generation})
    names = [t["target"] for t in targets]
    assert name not in names  # the sequential 0.5 is gone
    paired = next(t for t in targets if t["target"].startswith(name))
    assert paired["measured"] == 1.02 and paired["met"] is True and "paired" in paired["target"]


def test_paired_markdown_lists_every_round() -> None:
    lines = paired_markdown([_paired_row("x", 0.97)])
    assert any("| huggingface | raw | 8 streams | tokens_per_s |" in line for line in lines)
    assert paired_markdown([]) == []
    assert paired_targets([_paired_row("x", 0.97)])[0]["replaces"] == "x"


def test_ceiling_at_interpolates_on_the_batch_log_scale() -> None:
    ceiling = {"sweep": [
        {"batch_size": 16, "sentences_per_s": 200.0}, {"batch_size": 64, "sentences_per_s": 300.0},
        {"batch_size": 32, "sentences_per_s": 280.0},
    ]}  # fmt: skip
    assert ceiling_at(ceiling, 32) == 280.0
    assert ceiling_at(ceiling, 16 * 2**0.5) == pytest.approx(240.0)
    assert ceiling_at(ceiling, 8) is None and ceiling_at(ceiling, None) is None


def test_batcher_totals_sum_models_from_the_exposition() -> None:
    text = "\n".join([
        "# HELP hf_runtime_batches_total Encoder forward passes run.",
        "# TYPE hf_runtime_batches_total counter",
        'hf_runtime_batches_total{backend="huggingface",model="a"} 10.0',
        'hf_runtime_batches_total{backend="huggingface",model="b"} 5.0',
        'hf_runtime_items_total{backend="huggingface",model="a"} 300.0',
        "hf_runtime_items_totalish 7.0",
    ])  # fmt: skip
    assert batcher_totals(text) == (15.0, 300.0)
    assert batcher_totals("bentoml_requests_total 3.0") is None
    assert _mean_batch((15.0, 300.0), (25.0, 620.0)) == 32.0
    assert _mean_batch((15.0, 300.0), (15.0, 300.0)) is None and _mean_batch(None, None) is None


def test_raw_generate_server_answers_each_batch_size(tmp_path: Path) -> None:
    asked: list[tuple[int, int]] = []

    def load(model_dir: Path):
        def timed(batch: int, new_tokens: int) -> tuple[float, float]:
            asked.append((batch, new_tokens))
            return 0.5, 0.5

        return timed

    answers = io.StringIO()
    serve_raw_generate(tmp_path, 16, requests=io.StringIO("1\n8\n"), answers=answers, load=load)
    lines = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert lines == [{"ready": True}, {"tokens_per_s": 32.0}, {"tokens_per_s": 256.0}]
    assert asked == [(1, 16), (8, 16)]


def test_route_rows_become_targets_and_a_table() -> None:
    from benchmarks.reports.routes import routes_markdown, routes_targets

    row = {
        "route": "hf-runtime /v1/embeddings", "path": "/v1/embeddings", "texts": 1,
        "top": {"concurrency": 64, "texts": 1, "sentences_per_s": [300.0, 320.0],
                "ceiling_sentences_per_s": [400.0, 390.0], "ratios": [0.75, 0.821],
                "median_ratio": 0.79, "server_cpu_ms_per_request": [5.1, 5.0]},
        "low": {"concurrency": 1, "texts": 1, "p50_ms": [8.0, 7.5], "forward_ms": [6.0, 6.1],
                "excess_ms": [2.0, 1.4], "median_excess_ms": 1.7,
                "server_cpu_ms_per_request": [6.0, 6.2]},
    }  # fmt: skip
    ratio, excess = routes_targets([row])
    assert ratio["measured"] == 0.79 and ratio["met"] is False and "c=64" in ratio["target"]
    assert excess["measured"] == 1.7 and excess["met"] is True and "c=1" in excess["target"]
    table = "\n".join(routes_markdown([row]))
    assert "hf-runtime /v1/embeddings (1 sentence)" in table and "0.75, 0.82" in table
    assert evaluate_targets({"encoder": {"routes": [row]}})[-2:] == [ratio, excess]
