"""The store and the ledger import in one direction only (imports inside functions counted, type-only
imports under ``if TYPE_CHECKING:`` not): the pipeline is given a store, the store knows no pipeline, and
the ledger's column store names no class of the rules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "simulator"
MODULES = ["service", "store", "store.base", "store.memory", "store.redis", "store.journal", "ledger", "ledger.core"]
MODULES += ["ledger.memory", "scenarios.seeding"]


def path_of(module: str) -> Path:
    base = PACKAGE.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports(module: str) -> set[str]:
    """The simulator modules ``module`` imports at run time (at the top or inside functions)."""
    tree = ast.parse(path_of(module).read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("simulator."):
            name = node.module.removeprefix("simulator.")
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("simulator.") for a in node.names if a.name.startswith("simulator."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


def test_no_import_circle_between_the_pipeline_the_store_and_the_ledger() -> None:
    graph = {module: imports(module) for module in MODULES}
    circles: list[list[str]] = []

    def walk(module: str, trail: list[str]) -> None:
        for nxt in sorted(graph[module]):
            if nxt in trail:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif len(trail) < len(MODULES):
                walk(nxt, [*trail, nxt])

    for module in MODULES:
        walk(module, [module])
    assert circles == []
    assert "service" not in set().union(*(graph[m] for m in MODULES if m.startswith("store")))
    assert "ledger.core" not in graph["ledger.memory"]
