"""Every file in configs/ is valid and pins its Hub revision."""

from __future__ import annotations

import re

import pytest

from hf_runtime.config import REPO_ROOT, load_config

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_is_valid_and_pinned(path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(args={"config": str(path)}, env={})
    for model in config.models:
        if model.model_id:
            assert model.model_revision and re.fullmatch(r"[0-9a-f]{40}", model.model_revision)
