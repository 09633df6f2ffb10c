"""benchmarks.precision on the tiny encoder: every table cell is filled, files are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.core.precision_texts import TEXTS
from benchmarks.phases import precision


def test_the_text_set_is_fixed_varied_and_unique() -> None:
    assert len(TEXTS) == len(set(TEXTS)) == 200
    lengths = sorted(len(text.split()) for text in TEXTS)
    assert lengths[0] == 1 and lengths[-1] > 300  # one word to past MiniLM's 256 tokens


def test_precision_benchmark_runs_on_a_tiny_model(
    tiny_embedder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    texts = TEXTS[::10]  # 20 of every kind and length: the whole set takes a minute here
    results = precision.measure(True, embed_dir=tiny_embedder, sizes=(1, 4), texts=texts)
    assert set(results["accuracy"]) == {"float32", "bfloat16", "int8_dynamic"}
    reference = results["accuracy"]["float32"]
    assert reference["embedding"]["max_abs_diff"] == 0.0
    assert reference["classification"]["label_agreement"] == 1.0
    for name in ("bfloat16", "int8_dynamic"):
        embedding = results["accuracy"][name]["embedding"]
        assert 0 < embedding["max_abs_diff"] < 0.05
        assert embedding["min_cosine"] > 0.99
    assert [row["batch_size"] for row in results["speed"]["rows"]] == [1, 4]
    assert set(results["speed"]["rows"][0]["speedup"]) == {"bfloat16", "int8_dynamic"}
    out = tmp_path / "out"
    monkeypatch.setattr(precision, "measure", lambda *args, **kwargs: results)
    assert precision.main(["--quick", "--out-dir", str(out)]) == 0
    assert json.loads((out / "precision.json").read_text())["texts"] == 20
    table = (out / "precision.md").read_text()
    assert "| int8_dynamic |" in table and "| 4 |" in table
