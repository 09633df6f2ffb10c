"""Sparse (SPLADE) embeddings of sentence-transformers SparseEncoder checkpoints equal
`SparseEncoder.encode`'s within 1e-5, through every surface that serves them (in-process,
huggingface backend): TEI's /embed_sparse (and /embed and vLLM's /pooling, written out
densely), OpenAI
/v1/embeddings (`encoding_format: "sparse"`, and float / base64 written out densely), KServe
V1 ({"indices", "values"} per text) and V2 (INT64 `indices`, FP32 `values`, rows padded with
-1 / 0). The checkpoints are built and saved by sentence-transformers
itself (tests/st_checkpoints.py: max and sum pooling, relu and log1p_relu, the legacy
MLMTransformer, prompts with a default, max_active_dims); the task is inferred from them.
Bad requests are 400s in each protocol's shape; dense-only routes refuse the model.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.inference import infer_checkpoint_task
from hf_runtime.tasks.registry import Task
from tests.fakes import FakeRegistry, FakeServedModel
from tests.loading import load_encoder_model
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app
from tests.st_checkpoints import PROMPTS, SPARSE_CHECKPOINTS, build_sparse_checkpoint
from tests.tiny_models import build_bert_mlm

TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog",
    "paris is the capital of france!",
    "a",
]
TOLERANCE = 1e-5
STRICT = "-strict"  # the model name suffix of the auto_truncate: false copy


def source(folder: Path) -> ResolvedSource:
    return ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sparse-checkpoints")
    mlm = root / "mlm"
    mlm.mkdir()
    build_bert_mlm(mlm)
    built = {
        name: build_sparse_checkpoint(root / name, spec, mlm)
        for name, spec in SPARSE_CHECKPOINTS.items()
    }
    return {**built, "mlm": mlm}


@pytest.fixture(scope="module")
def references(folders: dict[str, Path]) -> dict[str, Any]:
    from sentence_transformers import SparseEncoder

    return {name: SparseEncoder(str(folders[name]), device="cpu") for name in SPARSE_CHECKPOINTS}


@pytest.fixture(scope="module")
def models(folders: dict[str, Path]) -> Iterator[list[Any]]:
    async def load_all() -> list[Any]:
        loaded = []
        for name in SPARSE_CHECKPOINTS:
            folder = folders[name]
            task = Task(infer_checkpoint_task(folder, source(folder).hf_config) or "")
            config = ModelConfig(model_name=name, model_dir=str(folder))
            loaded.append(await load_encoder_model(config, source(folder), task))
        folder = folders["splade-max"]
        strict = ModelConfig(
            model_name="splade-max" + STRICT, model_dir=str(folder), auto_truncate=False
        )
        loaded.append(await load_encoder_model(strict, source(folder), Task.sparse_embedding))
        return loaded

    loaded = asyncio.run(load_all())
    yield loaded
    for model in loaded:
        asyncio.run(model.aclose())


@pytest.fixture
async def client(models: list[Any]) -> AsyncIterator[httpx.AsyncClient]:
    registry = FakeRegistry([*models, FakeServedModel("dense", "text_embedding")])
    transport = httpx.ASGITransport(app=make_served_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def dense(indices: list[int], values: list[float], size: int) -> np.ndarray:
    row = np.zeros(size, dtype=np.float64)
    row[indices] = values
    return row


async def served_vectors(
    client: httpx.AsyncClient, model: str, size: int, prompt_name: str | None = None
) -> dict[str, np.ndarray]:
    """TEXTS' vectors, dense [n, size], from every surface (each one's shape checked)."""
    extra = {"prompt_name": prompt_name} if prompt_name else {}
    vectors: dict[str, np.ndarray] = {}
    for encoding in ("sparse", "float", "base64"):
        response = await client.post(
            "/v1/embeddings",
            json={"model": model, "input": TEXTS, "encoding_format": encoding, **extra},
        )
        assert response.status_code == 200, response.text
        rows = [item["embedding"] for item in response.json()["data"]]
        if encoding == "sparse":
            assert all(set(row) == {"indices", "values"} for row in rows)
            assert all(row["indices"] == sorted(row["indices"]) for row in rows)
            assert all(0 not in row["values"] for row in rows)
            vectors[encoding] = np.array([dense(r["indices"], r["values"], size) for r in rows])
        elif encoding == "base64":
            decoded = [np.frombuffer(base64.b64decode(row), dtype="<f4") for row in rows]
            vectors[encoding] = np.array(decoded, dtype=np.float64)
        else:
            vectors[encoding] = np.array(rows)
    if not extra:  # vLLM's /pooling takes no prompt: the model's default one applies
        pooled = await client.post("/pooling", json={"model": model, "input": TEXTS})
        assert pooled.status_code == 200, pooled.text
        vectors["vllm /pooling"] = np.array([item["data"] for item in pooled.json()["data"]])
    tei = await client.post("/embed_sparse", json={"model": model, "inputs": TEXTS, **extra})
    assert tei.status_code == 200, tei.text
    vectors["tei"] = np.array(
        [dense([e["index"] for e in row], [e["value"] for e in row], size) for row in tei.json()]
    )
    tei_dense = await client.post(
        "/embed", json={"model": model, "inputs": TEXTS, "normalize": False, **extra}
    )
    assert tei_dense.status_code == 200, tei_dense.text
    vectors["tei /embed"] = np.array(tei_dense.json())
    parameters = {"parameters": extra} if extra else {}
    v1 = await client.post(f"/v1/models/{model}:predict", json={"instances": TEXTS, **parameters})
    assert v1.status_code == 200, v1.text
    assert set(v1.json()) == {"predictions"}
    predictions = v1.json()["predictions"]
    vectors["v1"] = np.array([dense(p["indices"], p["values"], size) for p in predictions])
    tensor = {"name": "input-0", "shape": [len(TEXTS)], "datatype": "BYTES", "data": TEXTS}
    v2 = await client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor], **parameters})
    assert v2.status_code == 200, v2.text
    indices, values = v2.json()["outputs"]
    assert (indices["name"], indices["datatype"]) == ("indices", "INT64")
    assert (values["name"], values["datatype"]) == ("values", "FP32")
    width = max(len(p["indices"]) for p in predictions)
    assert indices["shape"] == values["shape"] == [len(TEXTS), width]
    rows = []
    for i in range(len(TEXTS)):
        index_row = indices["data"][i * width : (i + 1) * width]
        value_row = values["data"][i * width : (i + 1) * width]
        real = [j for j, index in enumerate(index_row) if index != -1]
        assert real == list(range(len(real)))  # padding only at the end, value 0
        assert all(value_row[j] == 0 for j in range(len(real), width))
        rows.append(dense([index_row[j] for j in real], [value_row[j] for j in real], size))
    vectors["v2"] = np.array(rows)
    return vectors


def assert_equal_vectors(served: dict[str, np.ndarray], expected: np.ndarray) -> None:
    for route, vectors in served.items():
        assert vectors.shape == expected.shape, route
        assert float(np.abs(vectors - expected).max()) <= TOLERANCE, route


def test_sparse_encoder_checkpoints_are_inferred_as_sparse_embedding(
    folders: dict[str, Path],
) -> None:
    for name in SPARSE_CHECKPOINTS:
        assert infer_checkpoint_task(folders[name], source(folders[name]).hf_config) == (
            "sparse_embedding"
        )
    # The masked-LM checkpoint they are built on stays a fill-mask model.
    assert infer_checkpoint_task(folders["mlm"], source(folders["mlm"]).hf_config) == "fill_mask"


@pytest.mark.parametrize("name", list(SPARSE_CHECKPOINTS))
async def test_vectors_equal_sparse_encoder(
    client: httpx.AsyncClient, references: dict[str, Any], name: str
) -> None:
    reference = references[name]
    expected = reference.encode(TEXTS).to_dense().numpy()
    size = expected.shape[1]
    assert_equal_vectors(await served_vectors(client, name, size), expected)
    for prompt_name in SPARSE_CHECKPOINTS[name].prompts:
        expected = reference.encode(TEXTS, prompt_name=prompt_name).to_dense().numpy()
        assert_equal_vectors(await served_vectors(client, name, size, prompt_name), expected)


async def test_max_active_dims_and_the_default_prompt_apply(
    client: httpx.AsyncClient, references: dict[str, Any]
) -> None:
    name = "splade-prompts-max-active-dims"
    response = await client.post(
        "/v1/embeddings", json={"model": name, "input": TEXTS, "encoding_format": "sparse"}
    )
    rows = [item["embedding"] for item in response.json()["data"]]
    assert [len(row["indices"]) for row in rows] == [12] * len(TEXTS)
    unprompted = references[name].encode(TEXTS, prompt="").to_dense().numpy()
    served = np.array([dense(r["indices"], r["values"], unprompted.shape[1]) for r in rows])
    assert np.abs(served - unprompted).max() > 1e-3
    assert set(PROMPTS) <= set(references[name].prompts)


async def test_token_id_inputs_and_usage(client: httpx.AsyncClient) -> None:
    by_text = await client.post(
        "/v1/embeddings", json={"model": "splade-max", "input": "a", "encoding_format": "sparse"}
    )
    ids = (await client.post("/tokenize", json={"model": "splade-max", "prompt": "a"})).json()
    by_ids = await client.post(
        "/v1/embeddings",
        json={"model": "splade-max", "input": ids["tokens"], "encoding_format": "sparse"},
    )
    assert by_ids.status_code == 200, by_ids.text
    assert by_ids.json()["data"] == by_text.json()["data"]
    assert by_text.json()["usage"]["prompt_tokens"] == len(ids["tokens"]) == 3


async def test_metadata_declares_the_two_outputs(client: httpx.AsyncClient) -> None:
    metadata = (await client.get("/v2/models/splade-max")).json()
    assert metadata["outputs"] == [
        {"name": "indices", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "values", "datatype": "FP32", "shape": [-1, -1]},
    ]
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["a"]}
    only_values = await client.post(
        "/v2/models/splade-max/infer", json={"inputs": [tensor], "outputs": [{"name": "values"}]}
    )
    assert [o["name"] for o in only_values.json()["outputs"]] == ["values"]


async def test_bad_requests_are_400s_in_each_protocols_shape(client: httpx.AsyncClient) -> None:
    cases = [
        ({"encoding_format": "sparse", "dimensions": 4}, "dimensions", "sparse embeddings"),
        ({"dimensions": 4}, "dimensions", "does not apply to a sparse embedding model"),
        ({"encoding_format": "sparse", "prompt_name": "nope"}, "prompt_name", "'nope'"),
        ({"encoding_format": "dense"}, "encoding_format", "'sparse'"),
    ]
    for fields, param, message in cases:
        response = await client.post(
            "/v1/embeddings", json={"model": "splade-max", "input": "a", **fields}
        )
        assert_error(response, 400, param, message)
    dense_model = await client.post(
        "/v1/embeddings", json={"model": "dense", "input": "a", "encoding_format": "sparse"}
    )
    assert_error(dense_model, 400, "model", 'use encoding_format "float" or "base64"')
    for path in ("/v1/rerank", "/v1/score"):
        body = {"model": "splade-max", "query": "a", "documents": ["b"], "text_1": "a"}
        body |= {"text_2": ["b"]}
        refused = await client.post(path, json=body)
        assert refused.status_code == 400, refused.text
        assert "sparse_embedding" in refused.json()["error"]["message"]
    too_long = await client.post(
        "/v1/embeddings",
        json={"model": "splade-max" + STRICT, "input": "a " * 300, "encoding_format": "sparse"},
    )
    assert_error(too_long, 413, "input", "more than this model's maximum of 256")
    # TEI's truncate: true cuts it on the same model, from either side
    for side in ("Left", "Right"):
        body = {"model": "splade-max" + STRICT, "inputs": "a " * 300, "truncate": True}
        cut = await client.post("/embed_sparse", json={**body, "truncation_direction": side})
        assert cut.status_code == 200, cut.text
    classify = await client.post("/classify", json={"model": "splade-max", "input": "a"})
    assert classify.status_code == 400 and "/pooling" in classify.json()["error"]["message"]
    no_states = await client.post("/embed_all", json={"model": "splade-max", "inputs": "a"})
    assert no_states.status_code == 424 and "per-token" in no_states.json()["error"]
    v1 = await client.post("/v1/models/splade-max:predict", json={"instances": [3]})
    assert v1.status_code == 400 and "error" in v1.json()
    pairs = {"instances": [{"text": "a", "text_pair": "b"}]}
    v1_pairs = await client.post("/v1/models/splade-max:predict", json=pairs)
    assert v1_pairs.status_code == 400 and "text pairs" in v1_pairs.json()["error"]
    unknown = await client.post(
        "/v2/models/splade-max/infer",
        json={
            "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
            "outputs": [{"name": "output-0"}],
        },
    )
    assert unknown.status_code == 400 and "indices, values" in unknown.json()["error"]
