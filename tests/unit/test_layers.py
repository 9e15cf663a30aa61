"""The package's layering: which layer may import which, no import circle, every module importable alone.

Modelled on aiohttp's ``tests/test_circular_imports.py``: each module is imported in a fresh interpreter
(so an import that only works because some other module happened to be imported first is caught), and the
imports read from the source with :mod:`ast` (imports inside functions and under ``TYPE_CHECKING`` count
too) must follow :data:`LAYERS`.

The tables are data. To place a new module, map it in :data:`MODULES` (the longest matching prefix wins);
to let a layer use another, add that layer to its entry in :data:`LAYERS` (only layers listed before it:
the test checks the table itself has no circle).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "simulator"

# module name prefix -> layer; the longest prefix that matches a module wins
MODULES: dict[str, str] = {
    "simulator": "basics",  # the package itself, errors, money, jsonio, operations
    "simulator.config": "config",
    "simulator.journal": "journal",
    "simulator.ledger": "ledger",
    "simulator.dialects": "codecs",  # a provider's codec: decode, hand to the service, render
    "simulator.dialects.codes": "dialect",  # what a provider is: codes, fields, crypto, the reference client
    "simulator.dialects.fields": "dialect",
    "simulator.dialects.crypto": "dialect",
    "simulator.dialects.client": "dialect",
    "simulator.dialects.registry": "dialect",
    "simulator.dialects.description": "dialect",
    "simulator.dialects.providers": "dialect",
    "simulator.scenarios": "scenarios",
    "simulator.service": "service",
    "simulator.store": "store",
    "simulator.server": "server",
    "simulator.server.netserve": "net",  # bounded body reads, connection caps: used by every HTTP edge
    "simulator.server.forwarded": "net",
    "simulator.control": "control",
    "simulator.ui": "ui",
    "simulator.scorecard": "scorecard",
    "simulator.certify": "certify",
    "simulator.cli": "cli",
    "simulator.__main__": "entry",
    "simulator.testing": "testing",
    "simulator.pytest_plugin": "entry",
}

# layer -> the layers it may import (besides itself); each only names layers listed above it
LAYERS: dict[str, set[str]] = {
    "basics": set(),
    "config": {"basics"},
    "journal": {"basics"},
    "ledger": {"basics", "config"},
    "dialect": {"basics", "config"},
    "scenarios": {"basics", "config", "dialect", "ledger"},
    "store": {"basics", "config", "journal", "ledger", "dialect", "scenarios"},
    "service": {"basics", "config", "journal", "ledger", "scenarios", "store"},  # the Simulator is given a store
    "net": {"basics", "config"},
    "codecs": {"basics", "config", "journal", "ledger", "dialect", "service", "net"},
    "ui": {"basics", "config", "journal"},
    "scorecard": {"basics", "config", "journal", "ledger", "dialect"},  # the ledger's read API (Books)
    "control": {"basics", "config", "journal", "ledger", "dialect", "scenarios", "service", "store", "codecs", "net"}
    | {"ui", "scorecard"},
    "certify": {"basics", "config", "dialect"},
    "server": {"basics", "config", "journal", "ledger", "dialect", "scenarios", "service", "store", "net"}
    | {"codecs", "control"},
    "testing": {"basics", "config", "dialect", "scenarios", "service", "store", "server"},
    "cli": {
        "basics",
        "config",
        "dialect",
        "scenarios",
        "service",
        "store",
        "server",
        "scorecard",
        "certify",
        "testing",
    },
    "entry": set(),  # anything: the entry points sit on top
}

# circles allowed for now (none: the store and the ledger lost theirs when the Simulator was given its store)
KNOWN_CIRCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULE_FILES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    prefixes = [p for p in MODULES if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is in no layer: map it in MODULES"
    return MODULES[max(prefixes, key=len)]


def imports_of(module: str) -> set[str]:
    """Every simulator module ``module`` imports, anywhere in its source (functions, TYPE_CHECKING)."""
    path = MODULE_FILES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULE_FILES else base)
    return {name for name in found if name in MODULE_FILES and name != module}


GRAPH = {module: imports_of(module) for module in MODULE_FILES}


def test_the_layer_table_has_no_circle() -> None:
    order = list(LAYERS)
    for layer, allowed in LAYERS.items():
        assert allowed <= set(order[: order.index(layer)]), f"{layer} may only import layers listed above it"
    assert set(MODULES.values()) <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULE_FILES))
def test_imports_follow_the_layers(module: str) -> None:
    layer = layer_of(module)
    if layer == "entry":
        return
    wrong = sorted(
        f"{module} ({layer}) imports {other} ({layer_of(other)})"
        for other in GRAPH[module]
        if layer_of(other) != layer and layer_of(other) not in LAYERS[layer]
    )
    assert not wrong, "\n".join(wrong)


def circles() -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in GRAPH[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            members = set()
            while True:
                member = stack.pop()
                members.add(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(frozenset(members))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    unexpected = [sorted(c) for c in circles() if c not in KNOWN_CIRCLES]
    assert not unexpected, unexpected


def test_the_graph_sees_function_level_imports() -> None:
    # the scorecard command imports rich only when a report is shown: still an edge of the CLI
    assert "simulator.scorecard.command" in GRAPH["simulator.cli"]


@pytest.mark.parametrize("module", sorted(set(MODULE_FILES) - {"simulator.__main__"}))  # __main__ runs the CLI
def test_each_module_imports_alone(module: str) -> None:
    subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"], check=True, cwd=ROOT)
