"""The benchmark's layering, enforced like hf_runtime's (tests/unit/test_architecture.py):
commands -> phases -> reports / peers -> loadgen -> core, one way; no import circle, counting
the imports inside functions; every module under 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_runtime.config import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
# The layers each layer may import (itself included); the top-level modules are the commands.
ALLOWED = {
    "core": {"core"},
    "loadgen": {"core", "loadgen"},
    "peers": {"core", "loadgen", "peers"},
    "reports": {"core", "reports"},
    "phases": {"core", "loadgen", "peers", "reports", "phases"},
}
MAX_LINES = 400
FILES = sorted(BENCHMARKS.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def benchmark_imports(path: Path) -> Iterator[str]:
    """Every benchmarks.* module `path` imports, at module level or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from benchmarks.core import names` imports the module benchmarks.core.names
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "benchmarks" and _is_module(name):
                yield name


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (REPO_ROOT / relative.with_suffix(".py")).is_file() or (REPO_ROOT / relative).is_dir()


def layer(module: str) -> str | None:
    """core, loadgen, peers, reports or phases; None for a command (or the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (BENCHMARKS / parts[1]).is_dir() else None


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_imports_go_one_way(path: Path) -> None:
    own = layer(module_name(path))
    for name in benchmark_imports(path):
        theirs = layer(name)
        if own is None:  # a command may use any layer, but not another command
            assert theirs is not None or name == "benchmarks", f"{path.name} imports {name}"
        else:
            assert theirs in ALLOWED[own], f"{module_name(path)} ({own}) imports {name}"


def test_no_import_circle() -> None:
    graph = {module_name(path): set(benchmark_imports(path)) for path in FILES}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circle = " -> ".join([*trail[trail.index(module) :], module])
            pytest.fail(f"import circle: {circle}")
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) < MAX_LINES, f"{path.name}: split it"
