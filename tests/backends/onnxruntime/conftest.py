"""Fixtures for the onnxruntime backend tests: exports land in a throwaway cache folder."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hf_runtime.backends.onnxruntime import BACKEND
from hf_runtime.sources import CACHE_ENV

T = TypeVar("T")

requires_onnxruntime = pytest.mark.skipif(
    not BACKEND.installed(), reason="onnxruntime is not installed (`pip install -e .[onnx]`)"
)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$HF_RUNTIME_CACHE_DIR for the module: exports are made once per module."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


class LoopRunner:
    """One event loop for a module's served models (their batchers live on it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def run() -> Iterator[LoopRunner]:
    runner = LoopRunner()
    yield runner
    runner.loop.close()
