"""Runtime LoRA on vLLM through vLLM's own routes: POST /v1/load_lora_adapter and
/v1/unload_lora_adapter on the OpenAI app over the real registry. A loaded adapter is listed
in /v1/models, changes greedy output under its name, and is gone after its unload; the model
repository's adapter folder loads by name; bad paths and names are 4xx."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.config import RuntimeConfig
from hf_runtime.runtime.registry import Registry
from tests.backends.vllm.conftest import ENGINE_SECTION, LoopRunner, post_json, requires_vllm

pytestmark = requires_vllm

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def served(
    run: LoopRunner,
    tiny_llama_dir: Path,
    tiny_llama_lora: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, Any]]:
    from hf_runtime.protocols.openai.app import make_app

    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(tiny_llama_lora[0], repository / "from-repo")
    model = {
        "model_name": "llama",
        "model_dir": str(tiny_llama_dir),
        "dtype": "float32",
        "backend": "vllm",
        "task": "text_generation",
        "max_model_len": 128,
        "vllm": {**ENGINE_SECTION, "enable_lora": True, "max_lora_rank": 8},
    }
    config = RuntimeConfig.model_validate(
        {
            "models": [model],
            "server": {"model_repository": str(repository), "allow_runtime_lora_paths": True},
        }
    )
    registry = Registry.from_config(config)
    run(registry.load_all())
    yield registry, make_app(registry)
    run(registry.close())


def complete(run: LoopRunner, app: Any, model: str) -> Any:
    body = {"model": model, "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    return run(post_json(app, "/completions", body))


def model_ids(run: LoopRunner, app: Any) -> list[str]:
    import httpx

    async def get() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/models")

    return [card["id"] for card in run(get()).json()["data"]]


def test_load_serve_unload(
    served: tuple[Registry, Any], run: LoopRunner, tiny_llama_lora: tuple[Path, Path]
) -> None:
    _, app = served
    base = complete(run, app, "llama").json()["choices"][0]["text"]
    body = {"lora_name": "sql", "lora_path": str(tiny_llama_lora[0])}
    loaded = run(post_json(app, "/load_lora_adapter", body))
    assert loaded.status_code == 200, loaded.text
    assert loaded.text == "Success: LoRA adapter 'sql' added successfully."
    assert model_ids(run, app) == ["llama", "sql"]
    adapted = complete(run, app, "sql")
    assert adapted.status_code == 200 and adapted.json()["model"] == "sql"
    assert adapted.json()["choices"][0]["text"] != base
    again = run(post_json(app, "/load_lora_adapter", body))
    assert again.status_code == 400 and "already been loaded" in again.text

    unloaded = run(post_json(app, "/unload_lora_adapter", {"lora_name": "sql"}))
    assert unloaded.status_code == 200, unloaded.text
    assert unloaded.text == "Success: LoRA adapter 'sql' removed successfully."
    assert model_ids(run, app) == ["llama"]
    assert complete(run, app, "sql").status_code == 404
    assert complete(run, app, "llama").json()["choices"][0]["text"] == base

    by_name = run(post_json(app, "/load_lora_adapter", {"lora_name": "from-repo"}))
    assert by_name.status_code == 200, by_name.text
    assert (
        complete(run, app, "from-repo").json()["choices"][0]["text"]
        == adapted.json()["choices"][0]["text"]
    )
    assert (
        run(post_json(app, "/unload_lora_adapter", {"lora_name": "from-repo"})).status_code == 200
    )


def test_bad_input(served: tuple[Registry, Any], run: LoopRunner, tmp_path: Path) -> None:
    _, app = served
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("/load_lora_adapter", {"lora_name": "x", "lora_path": str(tmp_path)}, 400, "no adapter"),
        ("/load_lora_adapter", {"lora_name": "x", "lora_path": "/no/such"}, 400, "no adapter"),
        ("/load_lora_adapter", {"lora_name": "llama", "lora_path": "/x"}, 400, "served model"),
        ("/load_lora_adapter", {"lora_name": "nope"}, 400, "no LoRA adapter folder"),
        ("/load_lora_adapter", {"lora_path": "/x"}, 400, "lora_name"),
        ("/unload_lora_adapter", {"lora_name": "nope"}, 404, "cannot be found"),
        ("/unload_lora_adapter", {"lora_name": "llama"}, 404, "cannot be found"),
    ]
    for path, body, status, words in cases:
        response = run(post_json(app, path, body))
        assert response.status_code == status, (path, body, response.text)
        assert words in response.json()["error"]["message"], (path, body, response.text)
    assert model_ids(run, app) == ["llama"]
