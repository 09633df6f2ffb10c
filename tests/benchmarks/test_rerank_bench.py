"""Smoke test of the rerank benchmark (benchmarks/rerank.py) on the tiny cross-encoder: every
in-process piece runs and reports; nothing asserts on speed."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.phases import rerank


def test_rerank_benchmark_runs_in_process(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    argv = [
        "--quick", "--no-http", "--concurrency", "1,4",
        "--model-dir", str(tiny_models["bert-cross-encoder"]), "--out-dir", str(tmp_path),
    ]  # fmt: skip
    assert rerank.main(argv) == 0
    results = json.loads((tmp_path / "rerank.json").read_text())
    assert results["ceiling"]["best"] > 0
    assert [row["concurrency"] for row in results["in_process"]] == [1, 4]
    assert all(row["pairs_per_s"] > 0 for row in results["in_process"])
    assert "in-process ceiling" in (tmp_path / "rerank.md").read_text()


def test_one_pair_bodies() -> None:
    body = json.loads(rerank.rerank_body(5))
    assert body["model"] == rerank.MODEL_NAME and len(body["documents"]) == 1
    assert body["query"] in rerank.QUERIES
