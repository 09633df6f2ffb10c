"""Smoke tests of the benchmark harness: every piece runs and counts correctly.

Nothing here asserts on speed; the fake server and the tiny model only prove the plumbing.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from benchmarks.core.settings import DEFAULT_CONFIG, Settings, parse_settings
from benchmarks.core.workload import (
    CHAT_PATH,
    SENTENCES,
    V1_PREDICT_PATH,
    chat_stream_body,
    v1_predict_body,
)
from benchmarks.loadgen.pyload import percentile, require_loopback, run_load, run_streams
from benchmarks.peers.servers import config_subset, serve_process
from benchmarks.reports.targets import evaluate_targets
from benchmarks.run import write_outputs
from tests.benchmarks.fake_server import FAKE_TOKENS_PER_STREAM


def test_percentile_interpolates() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("url", ["http://10.0.0.1:80", "http://example.com", "https://1.1.1.1"])
def test_load_only_goes_to_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(url)
    require_loopback("http://127.0.0.1:8080")
    require_loopback("http://[::1]:8080")


def test_workload_bodies() -> None:
    assert json.loads(v1_predict_body(len(SENTENCES) + 1)) == {"instances": [SENTENCES[1]]}
    chat = json.loads(chat_stream_body(3, max_tokens=7))
    assert chat["stream"] is True and chat["max_tokens"] == 7 and chat["ignore_eos"] is True
    assert chat["stream_options"] == {"include_usage": True}


async def test_run_load_stops_at_max_requests(fake_server: str) -> None:
    result = await run_load(
        fake_server, V1_PREDICT_PATH, v1_predict_body, concurrency=4, duration_s=30,
        max_requests=25,
    )  # fmt: skip
    summary = result.summary()
    assert summary["requests"] == 25 and summary["errors"] == 0
    assert summary["throughput_rps"] > 0
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]


async def test_run_load_stops_at_deadline(fake_server: str) -> None:
    result = await run_load(
        fake_server, V1_PREDICT_PATH, v1_predict_body, concurrency=2, duration_s=0.3
    )
    assert result.requests > 0
    assert result.wall_s < 5


async def test_run_load_counts_errors(fake_server: str) -> None:
    result = await run_load(
        fake_server, "/broken", v1_predict_body, concurrency=2, duration_s=10, max_requests=6
    )
    assert result.requests == 0 and result.errors == 6
    assert result.error_samples and result.error_samples[0].startswith("500")
    assert math.isnan(result.latency_ms(50))


async def test_run_streams_counts_tokens_and_ttft(fake_server: str) -> None:
    def body(index: int) -> bytes:
        return chat_stream_body(index, max_tokens=5)

    # duration 0: every worker still completes one stream.
    result = await run_streams(fake_server, CHAT_PATH, body, concurrency=3, duration_s=0)
    summary = result.summary()
    assert summary["streams"] == 3 and summary["errors"] == 0
    assert summary["completion_tokens"] == 3 * FAKE_TOKENS_PER_STREAM
    assert summary["ttft_p50_ms"] > 0 and summary["tokens_per_s"] > 0


async def test_run_streams_reports_http_errors(fake_server: str) -> None:
    result = await run_streams(
        fake_server, "/broken", v1_predict_body, concurrency=1, duration_s=0, max_streams=2
    )
    assert result.streams == 0 and result.errors == 1
    assert "500" in result.error_samples[0]


async def test_slow_requests_are_cut_off(fake_server: str) -> None:
    result = await run_load(
        fake_server, "/slow", v1_predict_body, concurrency=2, duration_s=0.1, grace_s=0.3
    )
    assert result.cut_off == 2 and result.requests == 0 and result.wall_s < 5


async def test_slow_streams_are_cut_off_and_keep_their_tokens(fake_server: str) -> None:
    result = await run_streams(
        fake_server, "/slow-stream", v1_predict_body, concurrency=2, duration_s=0,
        hard_limit_s=0.5,
    )  # fmt: skip
    assert result.cut_off == 2 and result.streams == 0
    assert result.completion_tokens == 2  # the one chunk each stream sent before stalling
    assert len(result.ttft_s) == 2


def test_serve_process_waits_for_ready_and_stops(tmp_path: Path) -> None:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]

    with serve_process(command, log_path=tmp_path / "http.log", ready_path="/") as server:
        assert httpx.get(server.url + "/").status_code == 200
        cpu = server.cpu_seconds()
        assert cpu is None or cpu > 0  # None off Linux
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/", timeout=1)


def test_serve_process_reports_a_dead_server(tmp_path: Path) -> None:
    def command(port: int) -> list[str]:
        return [sys.executable, "-c", "import sys; print('no luck'); sys.exit(3)"]

    with (
        pytest.raises(RuntimeError, match="no luck"),
        serve_process(command, log_path=tmp_path / "dead.log"),
    ):
        pass


def test_serve_process_stops_waiting_at_the_fail_marker(tmp_path: Path) -> None:
    def command(port: int) -> list[str]:
        script = "import time; print('model x failed to load', flush=True); time.sleep(60)"
        return [sys.executable, "-c", script]

    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="failed to load"),
        serve_process(command, log_path=tmp_path / "x.log", fail_marker="failed to load"),
    ):
        pass
    assert time.monotonic() - started < 30


def _fast_settings(tmp_path: Path) -> Settings:
    quick = parse_settings(["--quick", "--concurrency", "1,3", "--streams", "1,2"])
    return replace(
        quick, level_s=0.4, windows=2, warmup_s=0.05, stream_level_s=0.1, out_dir=tmp_path
    )


def _fake_server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.benchmarks.fake_server", str(port)]


def test_measure_encoder_server_checks_answers_and_loads(tmp_path: Path) -> None:
    from benchmarks.phases.encoder import measure_encoder_server
    from benchmarks.phases.encoder_servers import EncoderServer, v1_route

    s = _fast_settings(tmp_path)
    server = EncoderServer("fake", _fake_server_command, (v1_route("fake"), v1_route("again")))
    good, again = measure_encoder_server(server, "float32", s, reference=[2.0, 0.0])
    assert "error" not in good and good["answer_cosine_vs_in_process"] == 1.0
    assert [lv["concurrency"] for lv in good["levels"]] == [1, 3]
    assert all(lv["requests"] > 0 and lv["errors"] == 0 for lv in good["levels"])
    assert all(lv["server_cpu_ms_per_request"] is not None for lv in good["levels"])
    for level in good["levels"]:  # the fastest of two windows
        assert level["throughput_rps"] == max(level["window_rps"]) and len(level["window_rps"]) == 2
    assert again["levels"] and (tmp_path / "logs.tmp" / "fake-float32.log").exists()

    (wrong, never) = measure_encoder_server(server, "float32", s, reference=[0.0, 1.0])
    assert "not MiniLM's" in wrong["error"] and not wrong["levels"]
    assert never["error"] == wrong["error"]  # the same server: never measured


async def test_generation_levels_against_fake_server(fake_server: str, tmp_path: Path) -> None:
    from benchmarks.phases.streams import _generation_levels

    levels = await _generation_levels(fake_server, _fast_settings(tmp_path), "fake")
    assert [lv["concurrency"] for lv in levels] == [1, 2]
    assert all(lv["completion_tokens"] >= FAKE_TOKENS_PER_STREAM for lv in levels)


def test_config_subset_keeps_named_models(tmp_path: Path) -> None:
    out = config_subset(DEFAULT_CONFIG, ["minilm"], tmp_path / "only-minilm.yaml")
    from hf_runtime.config import load_config

    config = load_config(args={"config": str(out)}, env={})
    assert [m.model_name for m in config.models] == ["minilm"]
    with pytest.raises(ValueError, match="no model named"):
        config_subset(DEFAULT_CONFIG, ["nope"], tmp_path / "x.yaml")


def test_baseline_server_embeds(tiny_embedder: Path) -> None:
    from starlette.testclient import TestClient

    from benchmarks.peers.baseline_server import make_app

    with TestClient(make_app(tiny_embedder)) as client:
        response = client.post(V1_PREDICT_PATH, content=v1_predict_body(0))
        assert response.status_code == 200
        (vector,) = response.json()["predictions"]
        assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-4)
        assert client.post(V1_PREDICT_PATH, json={"instances": []}).status_code == 400
        assert client.post(V1_PREDICT_PATH, content=b"{").status_code == 400


def test_ceiling_and_dtype_difference(tiny_embedder: Path) -> None:
    from benchmarks.peers.ceiling import bf16_vs_fp32_difference, measure_ceiling

    ceiling = measure_ceiling(tiny_embedder, batch_sizes=(1, 4), seconds_per_size=0.01)
    assert [row["batch_size"] for row in ceiling["sweep"]] == [1, 4]
    assert ceiling["best_sentences_per_s"] == max(r["sentences_per_s"] for r in ceiling["sweep"])
    assert ceiling["single_forward_p50_ms"] > 0
    diff = bf16_vs_fp32_difference(tiny_embedder, SENTENCES[:3])
    assert 0 < diff["max_abs_diff"] < 0.1 and diff["min_cosine_similarity"] > 0.99


def test_bentoml_variant_is_a_batchable_service() -> None:
    from benchmarks.peers.bentoml_batching_service import MAX_BATCH_SIZE, MiniLMBentoBatching

    api = MiniLMBentoBatching.apis["embed"]
    assert api.batchable and api.max_batch_size == MAX_BATCH_SIZE


def _level(concurrency: int, rps: float, p50: float) -> dict[str, object]:
    return {
        "concurrency": concurrency, "requests": 10, "errors": 0, "error_samples": [],
        "wall_s": 1.0, "throughput_rps": rps, "p50_ms": p50, "p95_ms": p50, "p99_ms": p50,
        "client_cpu_ms_per_request": 0.1, "server_cpu_ms_per_request": 4.0,
    }  # fmt: skip


def _stream_level(concurrency: int, tokens_per_s: float) -> dict[str, object]:
    return {
        "concurrency": concurrency, "streams": concurrency, "errors": 0, "error_samples": [],
        "cut_off": 0, "wall_s": 1.0, "completion_tokens": 64, "tokens_per_s": tokens_per_s,
        "ttft_p50_ms": 20.0, "ttft_p95_ms": 30.0, "stream_p50_s": 1.0,
    }  # fmt: skip


def _fake_results() -> dict[str, object]:
    return {
        "machine": {
            "cpu_model": "Test CPU", "cpu_count": 2, "usable_cores": 2, "torch_threads": 2,
            "torch": "x", "transformers": "y", "bentoml": "z", "load_avg_at_start": [0.1],
        },
        "encoder": {
            "ceiling": {"float32": {
                "best_sentences_per_s": 100.0, "best_batch_size": 64,
                "single_forward_p50_ms": 10.0, "torch_threads": 2,
            }},
            "dtype_difference": {
                "sentences": 3, "max_abs_diff": 0.01, "min_cosine_similarity": 0.999,
            },
            "runs": [
                {"server": "baseline", "dtype": "float32",
                 "levels": [_level(1, 50.0, 11.0), _level(64, 10.0, 900.0)]},
                {"server": "bentoml-batching", "dtype": "float32", "error": "did not start"},
                {"server": "hf-runtime", "dtype": "float32",
                 "levels": [_level(1, 60.0, 12.5), _level(64, 90.0, 500.0)]},
            ],
        },
        "generation": {
            "settings": {"max_tokens": 64},
            "runs": [
                {"backend": "huggingface",
                 "levels": [_stream_level(1, 10.0), _stream_level(8, 25.0)]},
                {"backend": "vllm", "skipped": "vllm is not installed"},
            ],
        },
    }  # fmt: skip


def test_targets_and_report(tmp_path: Path) -> None:
    results = _fake_results()
    targets = {t["target"]: t for t in evaluate_targets(results)}
    assert targets["c=64 throughput vs ceiling (float32)"]["measured"] == 0.9
    assert targets["c=64 throughput vs ceiling (float32)"]["met"] is True
    assert targets["c=64 throughput vs baseline (float32)"]["measured"] == 9.0
    assert targets["c=1 p50 latency, ms (float32)"]["met"] is True  # 12.5 <= 10 + 3
    assert targets["generation tokens/s, 8 streams vs 1 (huggingface)"]["met"] is False
    results["targets"] = list(targets.values())

    summary = write_outputs(results, tmp_path)
    assert "| hf-runtime | 64 | 90.0 | 500.0 | 500.0 | 500.0 | 0 | 4.0 | 0.1 |  |" in summary
    assert "| baseline | 64 | 10.0 |" in summary and "| 9.00 |" in summary
    assert "bentoml-batching | - | failed: did not start" in summary
    assert "vllm is not installed" in summary and "Test CPU" in summary
    assert json.loads((tmp_path / "latest.json").read_text())["targets"]
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_settings_from_arguments() -> None:
    quick = parse_settings(["--quick", "--only", "encoder", "--variants", "none"])
    assert quick.phases == ("encoder",) and quick.variants == ()
    assert quick.level_s < 5 and quick.out_dir.name == "quick.tmp"
    full = parse_settings(["--dtype", "bfloat16", "--backends", "huggingface,vllm"])
    assert full.dtypes == ("bfloat16",) and full.backends == ("huggingface", "vllm")
    assert full.phases == ("encoder", "generation") and full.out_dir.name == "results"
    for bad in (["--variants", "nope"], ["--dtype", "int8"], ["--concurrency", "0"]):
        with pytest.raises(SystemExit):
            parse_settings(bad)
