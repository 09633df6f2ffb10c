"""A sentence-transformers checkpoint with a Dense, Normalize and prompts (its prompt's tokens
not pooled) behind a real `bentoml serve`: the official `openai` SDK gets the vectors
`SentenceTransformer.encode` computes, with the default prompt and with `prompt_name`; a KServe
V1 client gets the same; an unknown prompt name is OpenAI's 400. Beside it, a SparseEncoder
(SPLADE) checkpoint, its task inferred: TEI's /embed_sparse (httpx, as a TEI client calls it)
and the openai SDK with `encoding_format: "sparse"` get `SparseEncoder.encode`'s vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import yaml

from tests.e2e.server import bentoml_serve
from tests.st_checkpoints import (
    CHECKPOINTS,
    SPARSE_CHECKPOINTS,
    build_sparse_checkpoint,
    build_st_checkpoint,
)
from tests.tiny_models import build_bert_mlm

pytestmark = pytest.mark.e2e

NAME = "dense-exclude-prompt-normalize"
SPARSE = "splade-prompts-max-active-dims"
TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_st_checkpoint(tmp_path_factory.mktemp("st-e2e") / NAME, CHECKPOINTS[NAME])


@pytest.fixture(scope="module")
def sparse_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sparse-e2e")
    (root / "mlm").mkdir()
    build_bert_mlm(root / "mlm")
    return build_sparse_checkpoint(root / SPARSE, SPARSE_CHECKPOINTS[SPARSE], root / "mlm")


@pytest.fixture(scope="module")
def server_url(
    checkpoint: Path, sparse_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("st-e2e-server")
    config = folder / "config.yaml"
    model = {"model_name": "st", "model_dir": str(checkpoint), "task": "text_embedding"}
    sparse = {"model_name": "splade", "model_dir": str(sparse_checkpoint)}  # task inferred
    config.write_text(yaml.safe_dump({"models": [model, sparse]}))
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


def test_sparse_embeddings_for_tei_and_openai_clients(
    server_url: str, sparse_checkpoint: Path
) -> None:
    from sentence_transformers import SparseEncoder

    reference = SparseEncoder(str(sparse_checkpoint), device="cpu")
    expected = reference.encode(TEXTS, prompt_name="doc").to_dense().numpy()
    tei = httpx.post(
        f"{server_url}/embed_sparse",
        json={"inputs": TEXTS, "prompt_name": "doc", "model": "splade"},
        timeout=30,
    )
    assert tei.status_code == 200, tei.text
    served = np.zeros_like(expected)
    for row, entries in enumerate(tei.json()):
        served[row, [e["index"] for e in entries]] = [e["value"] for e in entries]
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)

    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)
    sparse = client.embeddings.create(
        model="splade",
        input=TEXTS,
        encoding_format="sparse",  # type: ignore[arg-type]  # ours, beside float and base64
        extra_body={"prompt_name": "doc"},
    )
    for row, item in enumerate(sparse.data):
        embedding: dict[str, list[float]] = item.embedding  # type: ignore[assignment]
        assert embedding["indices"] == [e["index"] for e in tei.json()[row]]
        values = expected[row, embedding["indices"]]
        np.testing.assert_allclose(embedding["values"], values, atol=1e-5, rtol=0)
    dense = client.embeddings.create(model="splade", input=TEXTS, extra_body={"prompt_name": "doc"})
    vectors = np.array([row.embedding for row in dense.data])  # the SDK's base64, decoded
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)

    refused = httpx.post(
        f"{server_url}/embed_sparse", json={"inputs": "a", "model": "st"}, timeout=30
    )
    assert refused.status_code == 424, refused.text
    assert refused.json()["error_type"] == "backend"


def test_tei_client_gets_the_same_vectors(server_url: str, checkpoint: Path) -> None:
    """TEI's routes as a TEI client calls them (httpx; `model` names the model, as two are
    served here)."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(checkpoint), device="cpu")
    tei = httpx.Client(base_url=server_url, timeout=30)
    embedded = tei.post("/embed", json={"inputs": TEXTS, "prompt_name": "doc", "model": "st"})
    assert embedded.status_code == 200, embedded.text
    expected = reference.encode(TEXTS, prompt_name="doc", normalize_embeddings=True)
    np.testing.assert_allclose(embedded.json(), expected, atol=1e-5, rtol=0)
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS}, "model": "st"}
    scores = tei.post("/similarity", json=body).json()
    default = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(scores, default @ default[0], atol=1e-5, rtol=0)
    states = tei.post(
        "/embed_all", json={"inputs": TEXTS[0], "truncation_direction": "Left", "model": "st"}
    )
    assert states.status_code == 200 and len(states.json()[0][0]) == 64  # hidden size
    info = tei.get("/info", params={"model": "st"}).json()
    assert info["model_type"] == {"embedding": {"pooling": "mean"}} and info["model_id"]
    tokens = tei.post("/tokenize", json={"inputs": "hello world", "model": "st"}).json()
    assert [t["text"] for t in tokens[0][1:-1]] == ["hello", "world"]
    ids = [t["id"] for t in tokens[0]]
    assert tei.post("/decode", json={"ids": ids, "model": "st"}).json() == ["hello world"]
    refused = tei.post("/embed", json={"inputs": [], "model": "st"})
    assert refused.status_code == 400
    assert refused.json() == {"error": "Batch is empty", "error_type": "empty"}
