"""The import graph of mlp/ (docs/design.md's layers): no cycle between modules, and the core and
the data layer know nothing of the layers above them. Read from the source with ast, so an import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlp"
UPPER = ("mlp.sweep", "mlp.report", "mlp.tracking", "mlp.bench", "mlp.commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The mlp modules `path` imports: `from mlp.x import y` counts mlp.x.y where y is a module,
    else mlp.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {f"{node.module}.{a.name}" for a in node.names}
            found |= names if names <= modules else names | {node.module}
    return {name for name in found if name in modules}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def test_the_graph_is_read():
    g = graph()
    assert "mlp.train" in g["mlp.bundle"] and "mlp.sweep.store" in g["mlp.sweep.launch"]


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])


def test_core_and_data_know_nothing_of_the_layers_above():
    below = {
        name: sorted(i for i in imports if i.startswith(UPPER))
        for name, imports in graph().items()
        if not name.startswith(UPPER) and name != "mlp"
    }
    assert {name: up for name, up in below.items() if up} == {}
