"""Layering rules, enforced: protocols see only the model interface; the runtime sees backends
only through their neutral interfaces and registry; backends never import the runtime, the
protocols or each other; heavy imports stay lazy."""

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
    "hf_runtime.dataplane",  # protocol-neutral inference semantics
)
DATAPLANE_ALLOWED_INTERNAL = (
    "hf_runtime.model",
    "hf_runtime.types",
    "hf_runtime.errors",
    "hf_runtime.observability",
    "hf_runtime.dataplane",
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


DATAPLANE_FILES = sorted((PACKAGE / "dataplane").rglob("*.py"))


@pytest.mark.parametrize("path", DATAPLANE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_data_plane_knows_no_wire_format_or_backend(path: Path) -> None:
    for name in imported_modules(path):
        assert name.split(".")[0] not in HEAVY + ("fastapi", "starlette", "grpc"), name
        if name.startswith("hf_runtime"):
            assert name.startswith(DATAPLANE_ALLOWED_INTERNAL), f"{path.name} imports {name}"


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


def imported_names(path: Path) -> set[str]:
    """Modules imported, plus `package.name` for each `from package import name` (a submodule
    imported that way counts as imported)."""
    names = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


RUNTIME_FILES = sorted((PACKAGE / "runtime").rglob("*.py"))
# The runtime reaches backends through their neutral interfaces, the registry and selection.
RUNTIME_ALLOWED_BACKEND_MODULES = (
    "hf_runtime.backends",
    "hf_runtime.backends.registry",
    "hf_runtime.backends.selection",
)
CONCRETE_BACKENDS = ("huggingface", "vllm")
BACKEND_SUBMODULES = {
    p.stem for p in (PACKAGE / "backends").iterdir() if p.suffix == ".py" or p.is_dir()
} - {"__init__", "__pycache__"}


def backend_modules_imported(path: Path) -> set[str]:
    """The `hf_runtime.backends` modules a file imports, `from ... import submodule` too."""
    modules = {name for name in imported_modules(path) if name.startswith("hf_runtime.backends")}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "hf_runtime.backends":
            modules.update(
                f"hf_runtime.backends.{alias.name}"
                for alias in node.names
                if alias.name in BACKEND_SUBMODULES
            )
    return modules


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtime_never_imports_a_concrete_backend(path: Path) -> None:
    for name in backend_modules_imported(path):
        assert name in RUNTIME_ALLOWED_BACKEND_MODULES, f"{path.name} imports {name}"


BACKEND_FILES = sorted((PACKAGE / "backends").rglob("*.py"))


@pytest.mark.parametrize("path", BACKEND_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_backends_import_neither_runtime_nor_protocols(path: Path) -> None:
    for name in imported_names(path):
        assert not name.startswith(("hf_runtime.runtime", "hf_runtime.protocols")), name


@pytest.mark.parametrize("path", BACKEND_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_concrete_backend_never_imports_another(path: Path) -> None:
    relative = path.relative_to(PACKAGE / "backends").parts
    own = relative[0] if len(relative) > 1 else None
    for name in imported_names(path):
        for backend in CONCRETE_BACKENDS:
            if backend != own:
                assert not name.startswith(f"hf_runtime.backends.{backend}"), name


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
