"""The house's import rules, read from the source with ast: no import circles, and nothing
below search, retrain or export (what they import, directly or not) imports the command layer
(search, retrain, export, report, the CLI, ...)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "asc_auto"

# The command layer: what runs a command or renders its results.
COMMANDS = {"asc_auto.search", "asc_auto.workers", "asc_auto.retrain", "asc_auto.export",
            "asc_auto.report", "asc_auto.plots", "asc_auto.summary", "asc_auto.cli",
            "asc_auto.cli_data", "asc_auto.overview"}
# Search, retrain and export stand side by side over the shared context builder.
SIDE_BY_SIDE = {"asc_auto.search", "asc_auto.retrain", "asc_auto.export"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the asc_auto modules it imports (anywhere in the file, lazy imports too)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` imports the module pkg.mod when there is one
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths
                           else node.module for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in paths and t != name}
        graph[name] = deps
    return graph


def below(graph: dict[str, set[str]], top: str) -> set[str]:
    """Every module `top` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[top])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    return seen - {top}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert "asc_auto.context" in graph["asc_auto.search"]
    assert "asc_auto.techniques.gcc" in graph["asc_auto.techniques"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert below({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"b", "c"}


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_nothing_below_search_retrain_or_export_imports_the_command_layer() -> None:
    graph = import_graph()
    bad = {f"{top} imports {m}" for top in SIDE_BY_SIDE for m in below(graph, top) & COMMANDS}
    assert bad == set()


def test_search_retrain_and_export_do_not_import_each_other() -> None:
    graph = import_graph()
    assert {f"{m} -> {d}" for m in SIDE_BY_SIDE for d in graph[m] & SIDE_BY_SIDE} == set()
