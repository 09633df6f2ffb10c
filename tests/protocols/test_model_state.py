"""A FAILED model says so, with its reason, on every surface (issue: failures visible on the
wire): V1 status and predict, V2 ready/metadata/infer over REST and gRPC, OpenAI routes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as triton
from starlette.testclient import TestClient
from tritonclient.utils import InferenceServerException

from tests.fakes import FakeRegistry, FakeServedModel
from tests.protocols.grpc_support import GrpcLiveServer
from tests.served_app import make_served_app

REASON = "Loading failed: OSError: no file named config.json in /models/broken"
LOADING_MESSAGE = "Model with name loading is not ready."


def failed_model(name: str, task: str = "sequence_classification") -> FakeServedModel:
    model = FakeServedModel(name, task, ready=False)
    model.failed_reason = REASON
    return model


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(
        [
            failed_model("broken"),
            failed_model("broken-gpt", "text_generation"),
            FakeServedModel("loading", ready=False),
            FakeServedModel("ok"),
        ]
    )


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_served_app(registry), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_failed(response: object, *, openai: bool = False) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    message = error["message"] if openai else error
    assert "Model with name broken" in message and REASON in message
    assert "not ready" not in message


def test_kserve_surfaces_say_why(client: TestClient) -> None:
    assert_failed(client.get("/v1/models/broken"))
    assert_failed(client.post("/v1/models/broken:predict", json={"instances": ["x"]}))
    assert_failed(client.get("/v2/models/broken"))
    assert_failed(client.get("/v2/models/broken/ready"))
    body = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert_failed(client.post("/v2/models/broken/infer", json=body))
    # Still loading keeps KServe's message; an unknown model stays a 404.
    loading = client.get("/v2/models/loading/ready")
    assert (loading.status_code, loading.json()) == (503, {"error": LOADING_MESSAGE})
    assert client.get("/v2/models/nope/ready").status_code == 404
    assert client.get("/v2/health/ready").status_code == 503


def test_openai_surfaces_say_why(client: TestClient) -> None:
    card = client.get("/openai/v1/models/broken").json()
    assert card["ready"] is False and card["state"] == "FAILED" and card["reason"] == REASON
    loading = client.get("/openai/v1/models/loading").json()
    assert loading["state"] == "LOADING" and "reason" not in loading
    assert "state" not in client.get("/openai/v1/models/ok").json()
    chat = {"model": "broken", "messages": [{"role": "user", "content": "hi"}]}
    assert_failed(client.post("/v1/chat/completions", json=chat), openai=True)
    assert_failed(
        client.post("/v1/completions", json={"model": "broken", "prompt": "hi"}), openai=True
    )
    embed = {"model": "broken", "input": "hi"}
    assert_failed(client.post("/v1/embeddings", json=embed), openai=True)


def test_grpc_surfaces_say_why(registry: FakeRegistry) -> None:
    with GrpcLiveServer(registry) as live, triton.InferenceServerClient(live.url) as grpc_client:
        assert not grpc_client.is_model_ready("broken")
        tensor = triton.InferInput("input-0", [1], "BYTES")
        tensor.set_data_from_numpy(np.array(["x"], dtype=np.object_))
        for call in (
            lambda: grpc_client.get_model_metadata("broken"),
            lambda: grpc_client.infer("broken", [tensor]),
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert caught.value.status() == "StatusCode.UNAVAILABLE"
            assert REASON in caught.value.message()
