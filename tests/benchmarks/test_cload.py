"""The C load generator (benchmarks/hfload.c via cload), the HTTP floor's arithmetic and the
report's floor and CPU-breakdown sections. Nothing here asserts on speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.core.workload import V1_PREDICT_PATH, v1_predict_body
from benchmarks.loadgen.hfload import build_hfload, compiler, measure_level, run_hfload
from benchmarks.peers.floor import make_trivial_app
from benchmarks.reports.encoder import attainable_share, encoder_ratios, floor_summary
from benchmarks.reports.plots import plot
from benchmarks.reports.summary import markdown
from benchmarks.reports.targets import evaluate_targets

needs_cc = pytest.mark.skipif(compiler() is None, reason="no C compiler")


@pytest.fixture(scope="module")
def hfload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = build_hfload(tmp_path_factory.mktemp("hfload"))
    assert binary is not None and binary.exists()
    return binary


@needs_cc
def test_hfload_counts_answers_latencies_and_its_own_cpu(fake_server: str, hfload: Path) -> None:
    result = run_hfload(
        hfload, fake_server, V1_PREDICT_PATH, v1_predict_body, concurrency=3, duration_s=0.5
    )
    summary = result.summary()
    assert summary["tool"] == "hfload" and summary["concurrency"] == 3
    assert result.requests > 0 and result.errors == 0 and summary["cut_off"] == 0
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    assert summary["throughput_rps"] > 0 and summary["client_cpu_ms_per_request"] >= 0
    assert sum(summary["latency_log2_us_histogram"]) == result.requests


@needs_cc
def test_hfload_reports_errors_with_a_sample(fake_server: str, hfload: Path) -> None:
    result = run_hfload(hfload, fake_server, "/broken", v1_predict_body, concurrency=2,
                        duration_s=0.3)  # fmt: skip
    assert result.requests == 0 and result.errors > 0
    assert "500" in result.summary()["error_samples"][0]


@needs_cc
def test_hfload_only_loads_loopback(hfload: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_hfload(hfload, "http://10.0.0.1:80", "/", v1_predict_body, concurrency=1,
                   duration_s=0.1)  # fmt: skip


async def test_the_python_generator_stands_in(fake_server: str) -> None:
    result = await measure_level(
        fake_server, V1_PREDICT_PATH, v1_predict_body, concurrency=2, duration_s=0.3,
        use_c=False,
    )  # fmt: skip
    assert result.summary()["tool"] == "python" and result.requests > 0


def test_trivial_route_answers_a_kserve_body() -> None:
    from starlette.testclient import TestClient

    from benchmarks.peers.floor import TRIVIAL_PATH

    with TestClient(make_trivial_app()) as client:
        assert client.post(TRIVIAL_PATH, content=v1_predict_body(0)).json() == {
            "predictions": [[0.0]]
        }
        assert client.get("/readyz").status_code == 200


def test_attainable_share_of_the_ceiling() -> None:
    assert attainable_share(1500.0, 500.0) == 0.75  # 1 / (1 + 500 / 1500)
    assert attainable_share(None, 500.0) is None and attainable_share(100.0, 0) is None


def _level(concurrency: int, rps: float) -> dict[str, object]:
    return {
        "concurrency": concurrency, "requests": 10, "errors": 0, "throughput_rps": rps,
        "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "server_cpu_ms_per_request": 0.5,
        "client_cpu_ms_per_request": 0.01,
    }  # fmt: skip


def test_report_shows_the_floor_and_the_cpu_breakdown(tmp_path: Path) -> None:
    encoder: dict[str, object] = {
        "ceiling": {"float32": {"best_sentences_per_s": 500.0, "best_batch_size": 64,
                                "single_forward_p50_ms": 5.0, "torch_threads": 2}},
        "runs": [
            {"server": "hf-runtime", "dtype": "float32", "levels": [_level(64, 450.0)]},
            {"server": "hf-runtime-before", "dtype": "float32", "levels": [_level(64, 250.0)]},
            {"server": "floor-uvicorn", "dtype": "float32", "levels": [_level(64, 8000.0)]},
            {"server": "floor-bentoml-fast-path", "dtype": "float32",
             "levels": [_level(1, 900.0), _level(64, 4500.0)]},
            {"server": "floor-bentoml", "dtype": "float32", "error": "did not start"},
        ],
        "breakdown": {
            "bentoml_middlewares": {
                "cpu_us_per_request": {"bentoml defaults": 500.0,
                                       "without OpenTelemetryMiddleware": 200.0},
                "middleware_cost_us": {"OpenTelemetryMiddleware": 300.0},
            },
            "own_path": {
                "hf-runtime": {"cpu_us_per_request": {"tokenize": 30.0},
                               "cpu_us_per_request_total": 4300.0,
                               "requests_per_s_in_process": 90.0},
                "hf-runtime-before": {"error": "failed"},
            },
        },
    }  # fmt: skip
    encoder["floor"] = floor_summary(encoder)
    shares = {row["server"]: row["attainable_share_of_ceiling"] for row in encoder["floor"]}
    assert shares == {"floor-uvicorn": 0.941, "floor-bentoml-fast-path": 0.9}
    assert all(r["hf_runtime_vs"] == {"hf-runtime-before": 1.8} for r in encoder_ratios(encoder))
    results = {"machine": {"cpu_model": "Test CPU", "cpu_count": 2, "usable_cores": 2,
                           "torch_threads": 2, "torch": "x", "transformers": "y", "bentoml": "z",
                           "load_avg_at_start": [0.1]}, "encoder": encoder}  # fmt: skip
    targets = {t["target"]: t for t in evaluate_targets(results)}
    assert targets["c=64 throughput vs ceiling, before (float32)"]["measured"] == 0.5
    assert targets["most of the ceiling the BentoML floor (fast path) leaves"]["met"] is True
    summary = markdown({**results, "targets": list(targets.values())})
    assert "| floor-bentoml-fast-path | 64 | 4500.0 |" in summary and "0.90x" in summary
    assert "floor-bentoml | - | failed: did not start" in summary
    assert "| without OpenTelemetryMiddleware | 200.0 | 300.0 |" in summary
    assert "| tokenize | 30.0 |" in summary
    plot(results, tmp_path / "throughput.png")
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"
