"""The CPU-per-request breakdown: core/thread_cpu.py on a fake /proc tree, the rows it makes
(reports/cpu.py), the zero-overhead bounds (phases/onnx_bounds.py) and the hook that names a
server's Python threads (peers/thread_names)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.core.settings import REPO_ROOT
from benchmarks.core.thread_cpu import breakdown, take_snapshot
from benchmarks.peers.servers import thread_names_env
from benchmarks.phases import onnx_bounds
from benchmarks.reports.cpu import cpu_markdown

ARBITER, WORKER = 100, 101


def _stat(path: Path, name: str, ppid: int, ticks: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    path.write_text(f"1 ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks[0]} {ticks[1]} 0 0 20 0\n")


def fake_proc(root: Path, threads: dict[int, int], idle: int, total: int) -> Path:
    """`bentoml serve` (ARBITER, ticks under key 0) and its worker's threads: tid -> utime."""
    _stat(root / str(ARBITER) / "stat", "bentoml", 1, (0, 0))
    _stat(root / str(ARBITER) / "task" / str(ARBITER) / "stat", "bentoml", 1, (threads[0], 0))
    (root / str(ARBITER) / "cmdline").write_bytes(b"bentoml\0serve\0service:HFRuntime\0")
    _stat(root / str(WORKER) / "stat", "python", ARBITER, (0, 0))
    (root / str(WORKER) / "cmdline").write_bytes(b"python\0-m\0_bentoml_impl.worker.service\0")
    for tid, ticks in threads.items():
        if tid:  # kernel names as Python 3.11 leaves them (the thread's creator's)
            name = "hf-runtime-infe" if tid == 105 else "python"
            _stat(root / str(WORKER) / "task" / str(tid) / "stat", name, ARBITER, (ticks, 1))
    _stat(root / "7" / "stat", "unrelated", 1, (999, 0))  # not in the tree
    (root / "stat").write_text(f"cpu  {total - idle} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1\n")
    return root


def test_threads_are_counted_by_role_per_request(tmp_path: Path) -> None:
    names = tmp_path / "names"
    names.mkdir()
    (names / f"{WORKER}-102").write_text("hf-runtime-infer-minilm_0")
    (names / f"{WORKER}-104").write_text("asyncio_0")
    (names / "55-103").write_text("another process's thread")
    # 101 main (event loop), 102 inference, 103 a native pool thread, 104 another Python one.
    start = {0: 10, 101: 100, 102: 50, 103: 20, 104: 5}
    before = take_snapshot(ARBITER, names, fake_proc(tmp_path / "a", start, 1000, 2000))
    end = {0: 14, 101: 140, 102: 70, 103: 80, 104: 7, 106: 4}  # 106 started in the window
    after = take_snapshot(ARBITER, names, fake_proc(tmp_path / "b", end, 1050, 2200))
    assert after.worker == WORKER
    # 100 ticks per second, 20 requests: a tick spread over them is 0.5 ms.
    cpu = breakdown(before, after, 20, client_ms_per_request=0.04, ticks_per_s=100)
    assert cpu["event_loop_ms"] == 20.0  # 40 ticks
    assert cpu["inference_ms"] == 10.0
    assert cpu["compute_pool_ms"] == 32.5  # 103's 60 ticks and 106's 5 (4 + 1 system)
    assert cpu["other_ms"] == 3.0  # the arbiter's 4 ticks and 104's 2
    assert cpu["server_ms"] == 65.5 and cpu["client_ms"] == 0.04
    assert cpu["idle_pct"] == 25.0
    assert cpu["threads_busy"] == {"event_loop": 1, "inference": 1, "compute_pool": 2, "other": 2}
    # Another server's inference threads by their own names (Infinity's thread pool's).
    named = breakdown(before, after, 20, ticks_per_s=100, inference_prefixes=("asyncio",))
    assert (named["inference_ms"], named["other_ms"]) == (1.0, 12.0)


def test_without_recorded_names_the_kernel_name_tells_the_inference_thread(
    tmp_path: Path,
) -> None:
    start = {0: 0, 101: 0, 103: 0, 105: 0}
    before = take_snapshot(ARBITER, None, fake_proc(tmp_path / "a", start, 0, 0))
    end = {0: 0, 101: 2, 103: 2, 105: 6}
    after = take_snapshot(ARBITER, None, fake_proc(tmp_path / "b", end, 0, 0))
    cpu = breakdown(before, after, 1, ticks_per_s=1000)
    assert (cpu["inference_ms"], cpu["compute_pool_ms"], cpu["idle_pct"]) == (6.0, 2.0, None)


def test_cpu_rows_take_each_columns_median_and_skip_rows_without_any() -> None:
    window = {"event_loop_ms": 1.0, "inference_ms": 0.5, "compute_pool_ms": 3.0,
              "other_ms": 0.1, "server_ms": 4.6, "client_ms": 0.04, "idle_pct": 2.0}  # fmt: skip
    slower = {**window, "event_loop_ms": 2.0, "idle_pct": 4.0}
    lines = cpu_markdown([("hf-runtime", 64, [window, slower, slower]), ("old", 1, [None])])
    assert "| hf-runtime | 64 | 2.00 | 0.50 | 3.00 | 0.10 | 4.60 | 0.04 | 4 | 3 |" in lines
    assert not any(line.startswith("| old") for line in lines)
    assert cpu_markdown([("old", 1, [])]) == []


def test_zero_overhead_bounds_against_infinity_and_the_cores() -> None:
    cpu = {"server_ms": 8.0, "client_ms": 2.0}
    values = {
        "hf-runtime onnxruntime": [{"throughput_rps": 150.0, "cpu": cpu}],
        "infinity": [{"throughput_rps": 100.0, "cpu": cpu}],
        "in-process onnxruntime": [
            {"throughput_rps": 400.0, "cpu_ms_per_sentence": 5.0, "batch_size": 32}
        ],  # fmt: skip
        "in-process torch": [
            {"throughput_rps": 200.0, "cpu_ms_per_sentence": 10.0, "batch_size": 16}
        ],  # fmt: skip
    }
    result = onnx_bounds.bounds(values, "infinity")
    assert result["vs_infinity"]["in-process onnxruntime"]["median"] == 4.0
    assert result["vs_infinity"]["in-process torch"]["median"] == 2.0
    served = result["servers"]["hf-runtime onnxruntime"]
    assert served["beyond_compute_ms"] == 3.0  # 8 ms per request against 5 of compute
    assert served["cpu_bound_rps"] == round(1000 * result["cores"] / 10, 1)
    text = "\n".join(onnx_bounds.markdown(result, 64))
    assert "in-process onnxruntime best batch / Infinity c=64: **4.0x**" in text
    speed = {"rows": [
        {"batch_size": 8, "float32_ms": 10.0, "speedup": {"onnxruntime float32": 1.0}},
        {"batch_size": 32, "float32_ms": 50.0, "speedup": {"onnxruntime float32": 2.0}},
    ]}  # fmt: skip
    assert onnx_bounds.best_batches({"speed": speed}) == {
        "in-process onnxruntime": 32, "in-process torch": 8,
    }  # fmt: skip
    assert set(onnx_bounds.best_batches(None).values()) == {onnx_bounds.DEFAULT_BATCH}


def test_the_hook_records_the_threads_python_starts_in_a_server(tmp_path: Path) -> None:
    names = tmp_path / "names"
    code = (
        "import os, threading\n"
        "t = threading.Thread(target=lambda: None, name='hf-runtime-infer-m_0')\n"
        "t.start(); t.join(); print(os.getpid())\n"
    )
    env = {**os.environ, **thread_names_env(names, {"PYTHONPATH": str(REPO_ROOT)})}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    pid = int(done.stdout)
    recorded = {path.name: path.read_text() for path in names.iterdir()}
    assert list(recorded.values()) == ["hf-runtime-infer-m_0"]
    assert next(iter(recorded)).startswith(f"{pid}-")
