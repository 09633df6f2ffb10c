"""Layering rules, enforced: protocols see only the model interface; heavy imports stay lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hf_runtime.config import REPO_ROOT

PACKAGE = REPO_ROOT / "hf_runtime"
HEAVY = ("torch", "transformers", "vllm", "tokenizers", "safetensors")
PROTOCOL_ALLOWED_INTERNAL = (
    "hf_runtime.model",
    "hf_runtime.types",
    "hf_runtime.errors",
    "hf_runtime.protocols",
    "hf_runtime.observability",  # a leaf: context, logs, metrics
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


PROTOCOL_FILES = sorted((PACKAGE / "protocols").rglob("*.py"))


@pytest.mark.parametrize("path", PROTOCOL_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_protocols_depend_only_on_the_model_interface(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name}"
        if name.startswith("hf_runtime"):
            assert name.startswith(PROTOCOL_ALLOWED_INTERNAL), f"{path.name} imports {name}"


OBSERVABILITY_FILES = sorted((PACKAGE / "observability").rglob("*.py"))


@pytest.mark.parametrize("path", OBSERVABILITY_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_observability_is_a_leaf(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name}"
        if name.startswith("hf_runtime"):
            assert name.startswith("hf_runtime.observability"), f"{path.name} imports {name}"


TASK_FILES = sorted((PACKAGE / "tasks").rglob("*.py"))


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_tasks_never_import_a_concrete_backend(path: Path) -> None:
    for name in imported_modules(path):
        assert not name.startswith(("hf_runtime.backends.", "hf_runtime.runtime")), name
        assert not name.startswith(("hf_runtime.protocols",)), name


def test_service_import_loads_no_heavy_library() -> None:
    code = (
        "import sys, service\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at service import: {result.stdout}"


def test_modules_stay_small() -> None:
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 450, f"{path.relative_to(REPO_ROOT)} has {lines} lines"
