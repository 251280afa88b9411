"""The shape of the code, read from its own imports: the shipped plugins reach mmsim only
through its plugin boundary, and the core's modules import each other without a cycle
(imports inside functions count: a lazy import that only hides a cycle is a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

CORE = REPO / "mmsim"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = list(path.relative_to(REPO).with_suffix("").parts)[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def test_the_shipped_plugins_import_mmsim_only_through_its_plugin_boundary():
    outside = []
    for path in sorted(REPO.glob("plugins/*/src/**/*.py")):
        for module, line in _imports(path):
            top = module.split(".")
            if top[0] != "mmsim" or module in ("mmsim", "mmsim.__version__"):
                continue
            if len(top) < 2 or top[1] != "plugin":
                outside.append(f"{path.relative_to(REPO)}:{line} {module}")
    assert outside == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_core_has_no_import_cycle():
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for module, _ in _imports(path):
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                edges.add(module)
        graph[name] = edges
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []
