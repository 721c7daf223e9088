"""No import cycle anywhere in wsim/, channel_models/, analysis/ (static import graph).

Every module-level import counts, ``if TYPE_CHECKING:`` blocks included (a type-only import of
the engine is still a layer breach); imports inside functions are deliberate lazy imports and do
not. ``import a.b.c`` / ``from a.b import c`` also import the packages ``a`` and ``a.b`` (except the
packages that contain the importing module: those are already being imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wsim", "channel_models", "analysis")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    found: list[ast.stmt] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """``module -> modules it imports`` over the three packages."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def add(src: str, target: str) -> None:
        # the packages above ``src`` are already being imported when ``src`` runs: no edge
        ancestors = {".".join(src.split(".")[:k]) for k in range(1, src.count(".") + 2)}
        parts = target.split(".")
        for k in range(1, len(parts) + 1):
            name = ".".join(parts[:k])
            if name in modules and name not in ancestors:
                graph[src].add(name)

    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in _module_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name)
                continue
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            add(name, base)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    add(name, f"{base}.{alias.name}")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_wsim_channel_models_analysis() -> None:
    graph = import_graph()
    assert "wsim.sim.engine" in graph and graph["wsim.sim.engine"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
