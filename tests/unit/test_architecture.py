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
    "hf_runtime.routes",  # the route table (a leaf)
    "hf_runtime.reasoning",  # reasoning models' text split into thinking and content (a leaf)
)
DATAPLANE_ALLOWED_INTERNAL = (
    "hf_runtime.model",
    "hf_runtime.types",
    "hf_runtime.errors",
    "hf_runtime.observability",
    "hf_runtime.dataplane",
    "hf_runtime.routes",  # route paths for messages naming the routes that serve a model
)


def _package_of(path: Path) -> list[str]:
    """The dotted package a file belongs to (its own name for an __init__), as parts."""
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return parts[:-1]


def absolute_module(path: Path, node: ast.ImportFrom) -> str | None:
    """The module an ImportFrom names, a relative one (`from . import x`) resolved."""
    if node.level == 0:
        return node.module
    package = _package_of(path)
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, node.module] if node.module else base) or None


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(path, node)
            if module:
                names.add(module)
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


def test_the_reasoning_splitter_is_a_leaf() -> None:
    """Pure Python over text: every protocol of both backends reads thinking through it."""
    for name in imported_modules(PACKAGE / "reasoning.py"):
        assert not name.startswith("hf_runtime") and name.split(".")[0] not in HEAVY, name


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
        if isinstance(node, ast.ImportFrom) and (module := absolute_module(path, node)):
            names.update(f"{module}.{alias.name}" for alias in node.names)
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
        if not isinstance(node, ast.ImportFrom):
            continue
        if absolute_module(path, node) == "hf_runtime.backends":
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


TASK_LEAF = "hf_runtime.tasks.registry"


def test_the_task_registry_is_a_leaf() -> None:
    """Every layer reads the task registry (config, backends, runtime, tasks): it imports
    nothing of hf_runtime, so reading it never imports a task module or a backend."""
    path = PACKAGE / "tasks" / "registry.py"
    for name in imported_modules(path):
        assert not name.startswith("hf_runtime"), f"registry.py imports {name}"
        assert name.split(".")[0] not in HEAVY, name


@pytest.mark.parametrize("path", BACKEND_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_backends_read_tasks_only_from_the_registry(path: Path) -> None:
    """Task modules import the backends' interfaces: a backend importing one would be a cycle."""
    for name in imported_names(path):
        if name.startswith("hf_runtime.tasks"):
            assert name.startswith(TASK_LEAF), f"{path.name} imports {name}"


CONFIG_FILES = sorted((PACKAGE / "config").rglob("*.py"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_config_imports_only_config_errors_and_the_task_registry(path: Path) -> None:
    allowed = ("hf_runtime.config", "hf_runtime.errors", TASK_LEAF)
    for name in imported_modules(path):
        assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name}"
        if name.startswith("hf_runtime"):
            assert name.startswith(allowed), f"{path.name} imports {name}"


DECODING_FILES = sorted((PACKAGE / "decoding").rglob("*.py"))


@pytest.mark.parametrize("path", DECODING_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_decoding_is_backend_neutral(path: Path) -> None:
    """Decoding (sampling on torch, stops, grammars, detokenizing) sees only the shared types
    and errors: never a backend, the runtime, a protocol or vLLM."""
    allowed = ("hf_runtime.decoding", "hf_runtime.errors", "hf_runtime.types")
    for name in imported_modules(path):
        assert name.split(".")[0] != "vllm", f"{path.name} imports {name}"
        if name.startswith("hf_runtime"):
            assert name.startswith(allowed), f"{path.name} imports {name}"


def test_sources_imports_only_config_and_errors() -> None:
    """Resolving a model's files is below the backends and the runtime; heavy libraries
    (transformers, to read a config) only inside the function that needs them."""
    path = PACKAGE / "sources.py"
    for name in imported_modules(path):
        if name.startswith("hf_runtime"):
            assert name in ("hf_runtime.config", "hf_runtime.errors"), name
    for name in top_level_imports(path):
        assert name.split(".")[0] not in HEAVY, name


def top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (module := absolute_module(path, node)):
            names.add(module)
    return names


def test_relative_imports_are_resolved() -> None:
    """The rules above see `from .x import y` as the absolute module it names."""
    node = ast.parse("from ..backends import registry").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert absolute_module(PACKAGE / "tasks" / "base.py", node) == "hf_runtime.backends"
    node = ast.parse("from . import registry").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert absolute_module(PACKAGE / "tasks" / "__init__.py", node) == "hf_runtime.tasks"


def test_the_route_table_is_a_leaf() -> None:
    """Protocols, the data plane, the gateway and the fast path read the route table: it
    imports nothing of hf_runtime and no web framework."""
    for name in imported_modules(PACKAGE / "routes.py"):
        assert not name.startswith("hf_runtime"), f"routes.py imports {name}"
        assert name.split(".")[0] not in HEAVY + ("fastapi", "starlette", "grpc"), name


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
