"""The package layout: bench.core is the whole contract and depends on nothing else of bench; built-in plugins
import only the core, the runtimes and their own package; no module imports in a circle or through a
deprecated path."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from bench.core.registry import COMPRESSORS, TASKS

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for top in ("bench", "compressors") for p in (ROOT / top).rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every bench or compressors module `path` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name.split(".")[0] in ("bench", "compressors")}


GRAPH = {name: imports(path) for name, path in MODULES.items()}
DEPRECATED = {name for name, path in MODULES.items() if "warn_moved(__name__" in path.read_text(encoding="utf-8")}


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def stray(sources: set[str], *allowed: str) -> set[tuple[str, str]]:
    """The imports of `sources` that reach outside the `allowed` packages."""
    return {(source, target) for source in sources for target in GRAPH[source] if not within(target, *allowed)}


def test_the_core_imports_nothing_outside_itself() -> None:
    assert not stray({name for name in GRAPH if within(name, "bench.core")}, "bench.core")


@pytest.mark.parametrize("kind", ["compressor", "task"])
def test_built_in_plugins_import_only_the_core_their_runtime_and_their_package(kind: str) -> None:
    registry = COMPRESSORS if kind == "compressor" else TASKS
    entries = [
        entry
        for entry in map(registry.entry, registry.names())
        if entry.target.startswith(("compressors.", "bench.tasks."))
    ]
    assert entries, f"no built-in {kind} found"
    for entry in entries:
        module = entry.target.split(":")[0]
        own = module.rsplit(".", 1)[0]
        reachable: set[str] = set()
        todo = [module]
        while todo:  # the plugin's module and the helpers of its own package that it imports
            current = todo.pop()
            reachable.add(current)
            todo += [t for t in GRAPH[current] if within(t, own) and t not in reachable and t in GRAPH]
        outside = stray(reachable, "bench.core", "bench.runtimes", own)
        assert not outside, f"{kind} {entry.name} imports outside the core and its runtime: {sorted(outside)}"


def test_runtimes_depend_only_on_the_core() -> None:
    assert not stray({name for name in GRAPH if within(name, "bench.runtimes")}, "bench.core", "bench.runtimes")


def test_no_module_imports_in_a_circle() -> None:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, "import cycle: " + " -> ".join((*path, name))
        state[name] = 1
        for target in sorted(GRAPH.get(name, ())):
            if target in GRAPH and target != name:
                visit(target, (*path, name))
        state[name] = 2
        order.append(name)

    for name in sorted(GRAPH):
        visit(name, ())
    assert len(order) == len(GRAPH)


def test_nothing_of_bench_imports_a_deprecated_path() -> None:
    assert {"bench.api", "bench.measure.census", "bench.records"} <= DEPRECATED
    users = {(name, t) for name, targets in GRAPH.items() for t in targets if t in DEPRECATED and name != t}
    assert not users


def test_every_built_in_plugin_loads_without_a_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for registry in (COMPRESSORS, TASKS):
            for entry in map(registry.entry, registry.names()):
                if entry.target.startswith(("compressors.", "bench.")):
                    registry.load(entry.name)


def test_deprecated_paths_still_serve_old_plugins() -> None:
    with pytest.warns(DeprecationWarning, match="bench.core"):
        import importlib

        import bench.api

        importlib.reload(bench.api)
    from bench.api import Compressor, ModelHandle, Task
    from bench.core.compressor import Compressor as CoreCompressor

    assert Compressor is CoreCompressor and ModelHandle.__module__ == "bench.core.model"
    assert Task.__module__ == "bench.core.task"
