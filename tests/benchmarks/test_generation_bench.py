"""The generation benchmark's own pieces (benchmarks/phases/generation.py, reports/generation.py):
scenarios against the fake server, raw generate() on a tiny model, ratios and targets.
Nothing here asserts on speed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.core.names import HF_BEFORE, VLLM_SERVER
from benchmarks.core.settings import parse_settings
from benchmarks.peers.raw_generate import raw_generate
from benchmarks.peers.vllm_server import vllm_server_command, vllm_server_env
from benchmarks.phases.generation import (
    generation_servers,
    served_backend,
    short_chats,
    simultaneous_arrivals,
)
from benchmarks.reports import generation as generation_report
from benchmarks.reports.targets import evaluate_targets
from tests.benchmarks.fake_server import FAKE_TOKENS_PER_STREAM


def _settings(tmp_path: Path, *argv: str) -> Any:
    return replace(parse_settings(["--quick", *argv]), out_dir=tmp_path)


async def test_simultaneous_arrivals_and_short_chats(fake_server: str, tmp_path: Path) -> None:
    s = replace(_settings(tmp_path), simultaneous=4, arrival_repeats=2, short_chats=6)
    burst = await simultaneous_arrivals(fake_server, s)
    assert burst["requests"] == 4 and burst["lone_ttft_ms"] > 0
    assert burst["simultaneous_ttft_max_ms"] >= burst["simultaneous_ttft_p50_ms"] > 0
    assert burst["ratio_p50_vs_lone"] > 0
    chats = await short_chats(fake_server, s)
    assert chats["done"] == 6 and chats["errors"] == 0
    assert 0 < chats["latency_p50_s"] <= chats["latency_p99_s"]


def test_raw_generate_runs_static_batches(tiny_models: dict[str, Path]) -> None:
    result = raw_generate(tiny_models["gpt2-chat"], max_tokens=4, batches=(1, 2), repeats=1)
    assert [lv["batch"] for lv in result["levels"]] == [1, 2]
    assert all(lv["tokens_per_s"] > 0 and lv["prefill_ms"] > 0 for lv in result["levels"])


def test_servers_compared(tmp_path: Path) -> None:
    s = _settings(tmp_path, "--backends", "huggingface,vllm", "--before", "HEAD")
    servers = generation_servers(s, tmp_path / "model", max_num_seqs=16)
    assert [server.name for server in servers] == ["huggingface", HF_BEFORE, "vllm", VLLM_SERVER]
    for server in servers[:3]:  # never `auto`, which serves a Llama on vLLM when installed
        assert f"backend={server.backend}" in server.command(8000)
        assert server.backend == server.name.removesuffix("-before")
    assert servers[3].backend is None
    log = "x INFO model smollm2: task text_generation, backend vllm (auto: vLLM is installed)"
    assert served_backend(log) == "vllm" and served_backend("nothing") is None
    before = servers[1]
    assert before.cwd is not None and (before.cwd / "service.py").exists()
    assert before.env["PYTHONPATH"] == str(before.cwd)
    command = vllm_server_command(tmp_path / "model", 16)(8123)
    assert "--max-num-seqs" in command and command[command.index("--max-num-seqs") + 1] == "16"
    assert servers[3].ready_path == "/health"
    env = vllm_server_env()
    assert env["VLLM_HOST_IP"] == "127.0.0.1"


def _level(streams: int, tokens_per_s: float, ttft: float) -> dict[str, Any]:
    return {
        "concurrency": streams, "streams": streams, "errors": 0, "error_samples": [],
        "cut_off": 0, "wall_s": 1.0, "completion_tokens": FAKE_TOKENS_PER_STREAM,
        "tokens_per_s": tokens_per_s, "ttft_p50_ms": ttft, "ttft_p95_ms": ttft,
        "ttft_p99_ms": ttft, "server_cpu_ms_per_token": round(1000 / tokens_per_s, 2),
    }  # fmt: skip


def _run(name: str, scale: float, chats_p50: float) -> dict[str, Any]:
    return {
        "backend": name,
        "levels": [_level(1, 20 * scale, 60 / scale), _level(8, 100 * scale, 300 / scale)],
        "simultaneous": {
            "requests": 8, "lone_ttft_ms": 60.0, "simultaneous_ttft_p50_ms": 240.0,
            "simultaneous_ttft_max_ms": 250.0, "ratio_p50_vs_lone": 4.0,
        },
        "short_chats": {"chats": 100, "max_tokens": 32, "latency_p50_s": chats_p50,
                        "latency_p99_s": 2 * chats_p50, "ttft_p50_ms": 500.0, "done": 100},
    }  # fmt: skip


def test_ratios_targets_and_markdown(tmp_path: Path) -> None:
    generation = {
        "settings": {"max_tokens": 64, "max_num_seqs": 16},
        "raw_generate": {"max_tokens": 64, "torch_threads": 2, "levels": [
            {"batch": 1, "tokens_per_s": 20.0, "prefill_ms": 50.0},
            {"batch": 8, "tokens_per_s": 125.0, "prefill_ms": 200.0},
        ]},
        "runs": [
            _run("huggingface", 1.0, 10.0), _run(HF_BEFORE, 0.8, 19.0),
            _run("vllm", 1.5, 8.0), _run(VLLM_SERVER, 1.6, 7.0),
        ],
    }  # fmt: skip
    ratios = generation_report.generation_ratios(generation)
    assert ratios["huggingface_vs_raw_generate"] == [
        {"streams": 1, "batch": 1, "ratio": 1.0}, {"streams": 8, "batch": 8, "ratio": 0.8},
    ]  # fmt: skip
    assert ratios["streams_8_vs_1"]["huggingface"] == 5.0
    assert ratios["short_chats_p50_vs_vllm"]["huggingface"] == 1.25
    assert ratios["huggingface_vs_before"][0] == {
        "streams": 1,
        "tokens_per_s": 1.25,
        "ttft_p50": 1.25,
        "cpu_per_token": 1.25,
    }
    assert ratios["vllm_vs_vllm_server"][1]["tokens_per_s"] == 0.94
    generation["ratios"] = ratios
    targets = {t["target"]: t for t in evaluate_targets({"generation": generation})}
    assert targets["huggingface tokens/s, 1 streams vs raw generate() batch 1"]["met"] is True
    assert targets["huggingface tokens/s, 8 streams vs raw generate() batch 8"]["met"] is False
    assert targets["huggingface TTFT p50, 8 sent at once vs alone"]["met"] is False
    assert targets["huggingface short chats p50 latency vs the vllm backend's"]["met"] is True
    assert targets["vllm backend tokens/s vs vLLM's server, 8 streams"]["met"] is False
    assert targets["generation tokens/s, 8 streams vs 1 (huggingface)"]["met"] is True
    lines = "\n".join(generation_report.generation_markdown(generation))
    assert "| huggingface | 8 | 100.0 | 300.0 | 300.0 | 10.0 | 8 | 0 | 0 |" in lines
    assert "| 8 | 125.0 | - | 200.0 |" in lines and "huggingface / huggingface-before" in lines
    assert "| huggingface | 60.0 | 240.0 | 250.0 | 4.0 | 10.0 | 20.0 | 500.0 | 100 |" in lines


@pytest.mark.parametrize("missing", ["raw_generate", "runs"])
def test_ratios_tolerate_missing_parts(missing: str) -> None:
    generation: dict[str, Any] = {"runs": [_run("huggingface", 1.0, 5.0)], "raw_generate": {}}
    generation.pop(missing)
    ratios = generation_report.generation_ratios(generation)
    assert ratios["huggingface_vs_raw_generate"] == []
    assert ratios["vllm_vs_vllm_server"] == []
    generation_report.generation_targets(generation)
    generation_report.generation_markdown(generation)
