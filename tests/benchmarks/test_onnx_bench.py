"""benchmarks.onnx_backend: the in-process tables on the tiny encoder, the paired table's
shape, and Infinity's command (nothing is installed or served here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.core.precision_texts import TEXTS
from benchmarks.peers import infinity
from benchmarks.phases import onnx_backend, onnx_inprocess, onnx_paired
from tests.backends.onnxruntime.conftest import requires_onnxruntime


@requires_onnxruntime
def test_the_inprocess_tables_on_a_tiny_model(
    tiny_embedder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_inprocess, "LEVELS", ("basic",))  # one level: loads are slow
    results = onnx_inprocess.measure(True, embed_dir=tiny_embedder, sizes=(2,), texts=TEXTS[::20])
    accuracy = results["accuracy"]
    assert list(accuracy) == list(onnx_inprocess.VARIANTS)
    assert accuracy["torch float32"]["embedding"]["max_abs_diff"] == 0.0
    assert accuracy["onnxruntime float32"]["embedding"]["max_abs_diff"] < 1e-4
    assert accuracy["onnxruntime float32"]["classification"]["label_agreement"] == 1.0
    assert accuracy["onnxruntime int8"]["embedding"]["min_cosine"] > 0.99
    speedups = results["speed"]["rows"][0]["speedup"]
    assert set(speedups) == {
        *list(onnx_inprocess.VARIANTS)[1:],
        "onnxruntime float32, basic optimisations",
    }
    out = tmp_path / "out"
    monkeypatch.setattr(onnx_inprocess, "measure", lambda *args, **kwargs: results)
    assert onnx_backend.main(["--no-http", "--out-dir", str(out)]) == 0
    assert json.loads((out / "onnx.json").read_text())["inprocess"]["texts"] == 10
    assert "| onnxruntime int8 |" in (out / "onnx.md").read_text()


def test_the_paired_table_and_infinitys_command(tmp_path: Path) -> None:
    window = {"throughput_rps": 100.0, "p50_ms": 10.0}
    faster = {"throughput_rps": 250.0, "p50_ms": 4.0}
    levels = {
        1: {
            onnx_paired.ONNX: [faster],
            onnx_paired.TORCH: [window],
            onnx_paired.INFINITY: [window],
        },
        64: {
            onnx_paired.ONNX: [faster],
            onnx_paired.TORCH: [window],
            onnx_paired.INFINITY: [window],
        },
    }
    pairs = onnx_paired._pairs(levels, (1, 64))
    versus_infinity = [
        p for p in pairs if p["ours"] == onnx_paired.ONNX and p["theirs"] == "infinity"
    ]
    assert [(p["concurrency"], p["metric"], p["median"], p["met"]) for p in versus_infinity] == [
        (64, "throughput_rps", 2.5, True),
        (1, "p50_ms", 2.5, True),  # theirs / ours: 10 / 4
    ]
    results = {"pairs": pairs, "levels": {str(k): v for k, v in levels.items()}, "rounds": 1,
               "window_s": 5.0, "vectors": {"infinity": {"min_cosine_vs_torch": 0.9999999}},
               "infinity_missing": None}  # fmt: skip
    table = "\n".join(onnx_paired.markdown(results))
    assert "| hf-runtime onnxruntime vs infinity | 64 | throughput_rps | 2.5 |" in table
    command = infinity.infinity_command(tmp_path / "venv", Path("/models/minilm"))(7997)
    assert command[:2] == [str(tmp_path / "venv" / "bin" / "infinity_emb"), "v2"]
    assert "--host" in command and command[command.index("--host") + 1] == "127.0.0.1"
    assert json.loads(onnx_paired.infinity_body(0))["model"] == infinity.MODEL_NAME
