"""The V2 model repository extension in-process, over a real registry of tiny models: index,
load and unload with tritonclient http and grpc unmodified, outputs unchanged after a reload,
the API key, and bad input on every new route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from hf_runtime.config import RuntimeConfig
from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.runtime.registry import Registry
from tests.protocols.conftest import LiveServer
from tests.protocols.grpc_support import GrpcLiveServer
from tests.served_app import make_served_app
from tests.tiny_models import build_bert_seq_cls

KEY = "repository-key-0001"
TEXTS = ["hello there", "the movie was good"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-repository")
    (root / "cls").mkdir()
    build_bert_seq_cls(root / "cls")
    (root / "bad").mkdir()
    (root / "bad" / "config.json").write_text("{not json")
    return root


def make_registry(repo: Path) -> Registry:
    config = RuntimeConfig.model_validate({"models": [], "server": {"model_repository": str(repo)}})
    return Registry.from_config(config)


@pytest.fixture
def http_server(repo: Path) -> Iterator[LiveServer]:
    registry = make_registry(repo)
    app = make_served_app(registry, GatewaySettings(api_keys=(KEY,)))
    with LiveServer(registry, app) as live:  # type: ignore[arg-type]
        yield live


def http_infer(client: triton_http.InferenceServerClient, headers: dict[str, str]) -> Any:
    tensor = triton_http.InferInput("input-0", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=np.object_))
    return client.infer("cls", [tensor], headers=headers).as_numpy("output-0")


def test_tritonclient_http_index_load_unload(http_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    client = triton_http.InferenceServerClient(http_server.url)
    index = {m["name"]: m for m in client.get_model_repository_index(headers=headers)}
    assert index["cls"]["state"] == "UNAVAILABLE"
    assert index["bad"]["state"] == "UNAVAILABLE"  # a folder: its load will say what is wrong
    assert client.is_server_ready(headers=headers)  # nothing is meant to be loaded yet
    with pytest.raises(InferenceServerException, match="503"):
        http_infer(client, headers)

    client.load_model("cls", headers=headers)
    client.load_model("cls", headers=headers)  # idempotent
    assert client.is_model_ready("cls", headers=headers)
    before = http_infer(client, headers)
    ready = client.get_model_repository_index(headers=headers)
    assert {"name": "cls", "state": "READY", "reason": ""} in ready

    client.unload_model("cls", headers=headers)
    assert not client.is_model_ready("cls", headers=headers)
    client.load_model("cls", headers=headers)
    np.testing.assert_allclose(http_infer(client, headers), before, rtol=1e-6)

    with pytest.raises(InferenceServerException, match="failed to load model bad"):
        client.load_model("bad", headers=headers)
    index = {m["name"]: m for m in client.get_model_repository_index(headers=headers)}
    assert index["bad"]["state"] == "FAILED" and index["bad"]["reason"]
    assert not client.is_server_ready(headers=headers)  # asked for and failed
    client.unload_model("bad", headers=headers)
    assert client.is_server_ready(headers=headers)


def test_http_bad_input(http_server: LiveServer) -> None:
    base = http_server.base_url
    auth = {"Authorization": f"Bearer {KEY}"}
    for path in ("/v2/repository/index", "/v2/repository/models/cls/load"):
        assert httpx.post(base + path).status_code == 401  # the API key applies
    cases: list[tuple[str, Any, int, str]] = [
        ("/v2/repository/models/nope/load", None, 404, "does not exist"),
        ("/v2/repository/models/nope/unload", None, 404, "does not exist"),
        ("/v2/repository/index", b"{bad json", 400, "Invalid JSON"),
        ("/v2/repository/index", b"[1]", 400, "JSON object"),
        ("/v2/repository/index", {"ready": "yes"}, 400, "ready must be"),
        ("/v2/repository/index", {"repository_name": "other"}, 400, "one model repository"),
        ("/v2/repository/index", {"extra": 1}, 400, "unknown key"),
        ("/v2/repository/models/cls/load", {"parameters": {"config": "{}"}}, 400, "not supported"),
        ("/v2/repository/models/cls/load", {"parameters": []}, 400, "must be an object"),
        ("/v2/repository/models/cls/unload", {"parameters": {"x": 1}}, 400, "unknown unload"),
        (
            "/v2/repository/models/cls/unload",
            {"parameters": {"unload_dependents": "no"}},
            400,
            "true or false",
        ),
    ]
    for path, body, status, words in cases:
        if isinstance(body, bytes) or body is None:
            response = httpx.post(base + path, content=body or b"", headers=auth)
        else:
            response = httpx.post(base + path, json=body, headers=auth)
        assert response.status_code == status, (path, body, response.text)
        assert words in response.json()["error"], (path, body, response.text)


def test_tritonclient_grpc_index_load_unload(repo: Path) -> None:
    registry = make_registry(repo)
    metadata = [("authorization", f"Bearer {KEY}")]
    headers = dict(metadata)
    with GrpcLiveServer(registry, GatewaySettings(api_keys=(KEY,))) as server:
        client = triton_grpc.InferenceServerClient(server.url)
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            client.get_model_repository_index()
        index = client.get_model_repository_index(headers=headers, as_json=True)
        assert {m["name"]: m["state"] for m in index["models"]}["cls"] == "UNAVAILABLE"

        def infer() -> Any:
            tensor = triton_grpc.InferInput("input-0", [len(TEXTS)], "BYTES")
            tensor.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
            return client.infer("cls", [tensor], headers=headers).as_numpy("output-0")

        client.load_model("cls", headers=headers)
        before = infer()
        client.unload_model("cls", headers=headers)
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            infer()
        client.load_model("cls", headers=headers)
        np.testing.assert_allclose(infer(), before, rtol=1e-6)
        ready = client.get_model_repository_index(headers=headers, as_json=True)["models"]
        assert {"name": "cls", "state": "READY"} in ready  # proto3 omits the empty reason

        for call, words in [
            (lambda: client.load_model("nope", headers=headers), "NOT_FOUND"),
            (lambda: client.unload_model("nope", headers=headers), "NOT_FOUND"),
            (lambda: client.load_model("cls", headers=headers, config="{}"), "not supported"),
            (lambda: client.load_model("bad", headers=headers), "failed to load model bad"),
        ]:
            with pytest.raises(InferenceServerException, match=words):
                call()
        server.run(registry.close())
