"""vLLM's runtime LoRA routes on a server whose generative model runs on the huggingface
backend (which serves no LoRA: a clear 400), and bad input on both routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hf_runtime.config import RuntimeConfig
from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.runtime.registry import Registry
from tests.protocols.conftest import LiveServer, make_fake_registry
from tests.served_app import make_served_app
from tests.tiny_models import build_gpt2_chat

KEY = "lora-routes-key-01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("gpt2-chat")
    build_gpt2_chat(folder)
    adapter = tmp_path_factory.mktemp("adapter")
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    model = {"model_name": "gpt", "model_dir": str(folder), "backend": "huggingface"}
    config = RuntimeConfig.model_validate(
        {"models": [model], "server": {"allow_runtime_lora_paths": True}}
    )
    registry = Registry.from_config(config)
    app = make_served_app(registry, GatewaySettings(api_keys=(KEY,)))
    with LiveServer(registry, app) as live:  # type: ignore[arg-type]
        httpx.post(  # loads the model on the server's own loop
            f"{live.base_url}/v2/repository/models/gpt/load",
            headers={"x-api-key": KEY},
            timeout=120,
        ).raise_for_status()
        live.adapter = adapter  # type: ignore[attr-defined]
        yield live


def post(server: LiveServer, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    if isinstance(body, bytes):
        return httpx.post(server.base_url + path, content=body, headers=headers, timeout=30)
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=30)


def test_the_huggingface_backend_refuses_lora(server: LiveServer) -> None:
    body = {"lora_name": "sql", "lora_path": str(server.adapter)}  # type: ignore[attr-defined]
    for prefix in ("/v1", "/openai/v1"):
        response = post(server, prefix + "/load_lora_adapter", body)
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert "huggingface backend, which does not serve LoRA adapters" in message
    models = httpx.get(server.base_url + "/v1/models", headers={"x-api-key": KEY}).json()
    assert [card["id"] for card in models["data"]] == ["gpt"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/load_lora_adapter", b"{not json", 400, "JSON"),
        ("/v1/load_lora_adapter", [], 400, "JSON object"),
        ("/v1/load_lora_adapter", {"lora_path": "/x"}, 400, "lora_name"),
        ("/v1/load_lora_adapter", {"lora_name": ""}, 400, "lora_name"),
        ("/v1/load_lora_adapter", {"lora_name": "a", "lora_path": 3}, 400, "lora_path"),
        ("/v1/load_lora_adapter", {"lora_name": "a", "is_3d_lora_weight": True}, 400, "3d"),
        ("/v1/load_lora_adapter", {"lora_name": "gpt", "lora_path": "/x"}, 400, "served model"),
        (
            "/v1/load_lora_adapter",
            {"lora_name": "x", "lora_path": "/x", "base_model_name": "no"},
            404,
            "exist",
        ),
        ("/v1/load_lora_adapter", {"lora_name": "x"}, 400, "no LoRA adapter folder"),
        ("/v1/unload_lora_adapter", {"lora_name": "nope"}, 404, "cannot be found"),
        ("/v1/unload_lora_adapter", {"lora_name": "gpt"}, 404, "cannot be found"),
        ("/v1/unload_lora_adapter", {}, 400, "lora_name"),
        ("/v1/unload_lora_adapter", b"", 400, ""),
    ],
)
def test_bad_input(server: LiveServer, path: str, body: Any, status: int, words: str) -> None:
    response = post(server, path, body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_the_api_key_applies(server: LiveServer) -> None:
    for path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
        assert post(server, path, {"lora_name": "x"}, key=None).status_code == 401


class _PlainRegistry:
    """A ModelRegistry and nothing more (no runtime LoRA)."""

    def __init__(self) -> None:
        self._inner = make_fake_registry()
        self.get, self.names = self._inner.get, self._inner.names
        self.ready = True


def test_a_server_without_adapters_says_so() -> None:
    registry = _PlainRegistry()
    with LiveServer(registry, make_served_app(registry)) as live:  # type: ignore[arg-type]
        response = httpx.post(f"{live.base_url}/v1/load_lora_adapter", json={"lora_name": "x"})
    assert response.status_code == 501 and "LoRA" in response.text
