"""A sentence-transformers checkpoint with a Dense, Normalize and prompts (its prompt's tokens
not pooled) behind a real `bentoml serve`: the official `openai` SDK gets the vectors
`SentenceTransformer.encode` computes, with the default prompt and with `prompt_name`; a KServe
V1 client gets the same; an unknown prompt name is OpenAI's 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import yaml

from tests.e2e.server import bentoml_serve
from tests.st_checkpoints import CHECKPOINTS, build_st_checkpoint

pytestmark = pytest.mark.e2e

NAME = "dense-exclude-prompt-normalize"
TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_st_checkpoint(tmp_path_factory.mktemp("st-e2e") / NAME, CHECKPOINTS[NAME])


@pytest.fixture(scope="module")
def server_url(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("st-e2e-server")
    config = folder / "config.yaml"
    model = {"model_name": "st", "model_dir": str(checkpoint), "task": "text_embedding"}
    config.write_text(yaml.safe_dump({"models": [model]}))
    with bentoml_serve(config, log_path=folder / "bentoml.log") as url:
        yield url


def test_openai_sdk_gets_sentence_transformers_vectors(server_url: str, checkpoint: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(checkpoint), device="cpu")
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)
    served = client.embeddings.create(model="st", input=TEXTS)
    vectors = np.array([row.embedding for row in served.data])
    assert vectors.shape == (2, 24)  # the Dense's width, not the hidden size (64)
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)

    by_name = client.embeddings.create(model="st", input=TEXTS, extra_body={"prompt_name": "doc"})
    expected = reference.encode(TEXTS, prompt_name="doc", normalize_embeddings=True)
    np.testing.assert_allclose([row.embedding for row in by_name.data], expected, atol=1e-5, rtol=0)
    v1 = httpx.post(
        f"{server_url}/v1/models/st:predict",
        json={"instances": TEXTS, "parameters": {"prompt_name": "doc"}},
        timeout=30,
    )
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(v1.json()["predictions"], expected, atol=1e-5, rtol=0)

    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="st", input=TEXTS, extra_body={"prompt_name": "nope"})
    assert refused.value.status_code == 400
    assert "prompt_name 'nope'" in refused.value.message
