"""Embeddings of sentence-transformers checkpoints equal `SentenceTransformer.encode`'s, through
/v1/embeddings, KServe V1 and V2 (in-process, huggingface backend).

Every checkpoint is built and saved by sentence-transformers itself (tests/st_checkpoints.py):
each Pooling mode, several at once, include_prompt false, Dense with Tanh / Identity / GELU /
ReLU, with and without bias, with a residual, LayerNorm, Normalize, Dropout,
WeightedLayerPooling, prompts with a default, truncate_dim, pytorch_model.bin weights. By
default every vector is L2-normalised (KServe's behaviour): they equal
encode(normalize_embeddings=True); with normalize_embeddings off they equal encode() itself.
Unknown prompt names are 400s in each protocol's shape; unsupported modules fail the load,
naming the module.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task
from tests.fakes import FakeRegistry
from tests.loading import load_encoder_model
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app
from tests.st_checkpoints import CHECKPOINTS, build_st_checkpoint
from tests.tiny_models import build_bert_embed

pytestmark = pytest.mark.slow  # builds and loads a dozen checkpoints, twice

TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog",
    "paris is the capital of france!",
    "a",
]
TOLERANCE = 1e-5
RAW = "-raw"  # the model name suffix of the normalize_embeddings: false copy


def source(folder: Path) -> ResolvedSource:
    return ResolvedSource(folder, folder, json.loads((folder / "config.json").read_text()))


async def load(folder: Path, name: str, **flags: Any) -> Any:
    config = ModelConfig(model_name=name, model_dir=str(folder), **flags)
    return await load_encoder_model(config, source(folder), Task.text_embedding)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("st-checkpoints")
    bert = root / "bert"
    bert.mkdir()
    build_bert_embed(bert)
    return {
        name: build_st_checkpoint(root / name, spec, bert) for name, spec in CHECKPOINTS.items()
    }


@pytest.fixture(scope="module")
def references(folders: dict[str, Path]) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    return {name: SentenceTransformer(str(path), device="cpu") for name, path in folders.items()}


@pytest.fixture(scope="module")
def models(folders: dict[str, Path]) -> Iterator[list[Any]]:
    async def load_all() -> list[Any]:
        loaded = []
        for name, path in folders.items():
            loaded.append(await load(path, name))
            loaded.append(await load(path, name + RAW, normalize_embeddings=False))
        return loaded

    loaded = asyncio.run(load_all())
    yield loaded
    for model in loaded:
        asyncio.run(model.aclose())


@pytest.fixture
async def client(models: list[Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_served_app(FakeRegistry(models))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def served_vectors(
    client: httpx.AsyncClient, model: str, prompt_name: str | None = None, **fields: Any
) -> dict[str, np.ndarray]:
    """The vectors of TEXTS from /v1/embeddings, V1 predict and V2 infer."""
    extra = {"prompt_name": prompt_name} if prompt_name else {}
    openai = await client.post(
        "/v1/embeddings", json={"model": model, "input": TEXTS, **extra, **fields}
    )
    assert openai.status_code == 200, openai.text
    vectors = {"openai": np.array([row["embedding"] for row in openai.json()["data"]])}
    if fields:
        return vectors
    parameters = {"parameters": extra} if extra else {}
    v1 = await client.post(f"/v1/models/{model}:predict", json={"instances": TEXTS, **parameters})
    assert v1.status_code == 200, v1.text
    vectors["v1"] = np.array(v1.json()["predictions"])
    tensor = {"name": "input-0", "shape": [len(TEXTS)], "datatype": "BYTES", "data": TEXTS}
    v2 = await client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor], **parameters})
    assert v2.status_code == 200, v2.text
    [output] = v2.json()["outputs"]
    vectors["v2"] = np.array(output["data"]).reshape(output["shape"])
    return vectors


def assert_equal_vectors(served: dict[str, np.ndarray], expected: np.ndarray) -> float:
    worst = 0.0
    for route, vectors in served.items():
        assert vectors.shape == expected.shape, route
        worst = max(worst, float(np.abs(vectors - expected).max()))
    assert worst <= TOLERANCE
    return worst


@pytest.mark.parametrize("name", list(CHECKPOINTS))
async def test_vectors_equal_sentence_transformers(
    client: httpx.AsyncClient, references: dict[str, Any], name: str
) -> None:
    reference = references[name]
    worst = assert_equal_vectors(
        await served_vectors(client, name), reference.encode(TEXTS, normalize_embeddings=True)
    )
    raw = assert_equal_vectors(await served_vectors(client, name + RAW), reference.encode(TEXTS))
    for prompt_name in CHECKPOINTS[name].prompts:
        expected = reference.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True)
        served = await served_vectors(client, name, prompt_name)
        worst = max(worst, assert_equal_vectors(served, expected))
    print(f"{name}: max abs diff {worst:.2e} (normalised), {raw:.2e} (raw)")


async def test_prompts_change_the_vectors(
    client: httpx.AsyncClient, references: dict[str, Any]
) -> None:
    """The default prompt is applied (not merely accepted): the vectors without it differ."""
    name = "dense-tanh-normalize-prompts"
    served = (await served_vectors(client, name))["openai"]
    unprompted = references[name].encode(TEXTS, prompt="", normalize_embeddings=True)
    assert served.shape == (len(TEXTS), 24)
    assert np.abs(served - unprompted).max() > 1e-3


async def test_dimensions_cut_truncate_dim_further(
    client: httpx.AsyncClient, references: dict[str, Any]
) -> None:
    name = "dense-truncate-dim-bin-weights"  # truncate_dim 20 of 48
    reference = references[name]
    assert (await served_vectors(client, name))["openai"].shape == (len(TEXTS), 20)
    served = await served_vectors(client, name, dimensions=8)
    assert_equal_vectors(served, reference.encode(TEXTS, truncate_dim=8, normalize_embeddings=True))
    raw = await served_vectors(client, name + RAW, dimensions=8)
    assert_equal_vectors(raw, reference.encode(TEXTS, truncate_dim=8))
    response = await client.post(
        "/v1/embeddings", json={"model": name, "input": "a", "dimensions": 21}
    )
    assert_error(response, 400, "dimensions", "from 1 to 20")
    metadata = (await client.get(f"/v2/models/{name}")).json()
    assert metadata["outputs"][0]["shape"] == [-1, 20]


async def test_unknown_prompt_names_are_400s_in_each_protocols_shape(
    client: httpx.AsyncClient,
) -> None:
    name = "dense-tanh-normalize-prompts"
    openai = await client.post(
        "/v1/embeddings", json={"model": name, "input": "a", "prompt_name": "nope"}
    )
    assert_error(openai, 400, "prompt_name", "'nope' is not one of this model's prompts")
    ids = await client.post(
        "/v1/embeddings", json={"model": name, "input": [1, 2, 3], "prompt_name": "query"}
    )
    assert_error(ids, 400, "prompt_name", "token-id inputs")
    # sentence-transformers saves empty "query" and "document" prompts for every model
    unprompted = await client.post(
        "/v1/embeddings", json={"model": "pool-mean", "input": "a", "prompt_name": "doc"}
    )
    assert_error(unprompted, 400, "prompt_name", "prompts (document, query)")
    for parameters in ({"prompt_name": "nope"}, {"prompt_name": 3}, {"prompt_name": ""}):
        v1 = await client.post(
            f"/v1/models/{name}:predict", json={"instances": ["a"], "parameters": parameters}
        )
        tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["a"]}
        v2 = await client.post(
            f"/v2/models/{name}/infer", json={"inputs": [tensor], "parameters": parameters}
        )
        for response in (v1, v2):
            assert response.status_code == 400, response.text
            assert set(response.json()) == {"error"}
            assert "prompt_name" in response.json()["error"]


# ---------------------------------------------------------------- load-time checks


def edited(folder: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return copy


@pytest.mark.parametrize(
    "kind",
    [
        "sentence_transformers.models.CNN",
        "sentence_transformers.sentence_transformer.modules.Router",
        "sentence_transformers.models.StaticEmbedding",
        "custom_st.Dense",
    ],
)
def test_unsupported_modules_fail_the_load_naming_them(
    folders: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    path = edited(folders["dense-tanh-normalize-prompts"], tmp_path, "unsupported")
    modules = json.loads((path / "modules.json").read_text())
    modules.append({"idx": 4, "name": "4", "path": "4_Other", "type": kind})
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=f"module '{kind}'.*not supported"):
        asyncio.run(load(path, "m"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"activation_function": "my_package.Swish"}, "is not a torch.nn module class"),
        ({"in_features": 63}, "takes 63 values; the modules before it give 64"),
        ({"module_input_name": "token_embeddings"}, "on 'token_embeddings' is not supported"),
    ],
)
def test_bad_dense_configs_fail_the_load(
    folders: dict[str, Path], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = edited(folders["dense-tanh-normalize-prompts"], tmp_path, "dense")
    dense = path / "2_Dense" / "config.json"
    dense.write_text(json.dumps({**json.loads(dense.read_text()), **change}))
    with pytest.raises(ConfigError, match=message):
        asyncio.run(load(path, "m"))


def test_missing_module_weights_fail_the_load(folders: dict[str, Path], tmp_path: Path) -> None:
    path = edited(folders["dense-identity-nobias-layernorm"], tmp_path, "weights")
    (path / "3_LayerNorm" / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="no model.safetensors or pytorch_model.bin"):
        asyncio.run(load(path, "m"))


def test_configured_prompts_override_the_checkpoints(
    folders: dict[str, Path], references: dict[str, Any]
) -> None:
    name = "dense-tanh-normalize-prompts"
    reference = references[name]

    async def embed(**flags: Any) -> np.ndarray:
        model = await load(folders[name], "m", **flags)
        try:
            return np.array((await model.embed(TEXTS)).embeddings)
        finally:
            await model.aclose()

    by_name = asyncio.run(embed(default_prompt_name="doc"))
    expected = reference.encode(TEXTS, prompt_name="doc", normalize_embeddings=True)
    assert np.abs(by_name - expected).max() <= TOLERANCE
    by_text = asyncio.run(embed(default_prompt="search: "))
    expected = reference.encode(TEXTS, prompt="search: ", normalize_embeddings=True)
    assert np.abs(by_text - expected).max() <= TOLERANCE
    none = asyncio.run(embed(default_prompt=""))
    expected = reference.encode(TEXTS, prompt="", normalize_embeddings=True)
    assert np.abs(none - expected).max() <= TOLERANCE
    with pytest.raises(ConfigError, match="default_prompt_name 'nope' is not one of"):
        asyncio.run(embed(default_prompt_name="nope"))
    with pytest.raises(ValueError, match="mutually exclusive"):
        ModelConfig(model_dir="x", default_prompt_name="doc", default_prompt="q: ")


def test_weighted_layer_pooling_is_read(folders: dict[str, Path]) -> None:
    """(Not skipped as sentence-transformers skips it for a model without all its layers.)"""
    from hf_runtime.tasks.st_checkpoint import read_settings

    weighting = read_settings(folders["weighted-layers-cls+mean-prompts"]).layer_weighting
    assert weighting is not None and (weighting.layer_start, weighting.num_hidden_layers) == (1, 2)
