"""One description per dialect, registered once: a fourth provider is a description plus one registration."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.control import openapi
from simulator.dialects import codes, registry
from simulator.dialects.description import Description
from simulator.errors import SourceError
from simulator.scenarios import loader

ROOT = Path(__file__).resolve().parents[3]
DIALECT_MODULES = {"simulator/dialects/xpro.py", "simulator/dialects/fizzy.py", "simulator/dialects/ambslot.py"}

TOY = Description(
    name="toy",
    title="Toy Wallet",
    codec="simulator.dialects.ambslot:Ambslot",  # unused here: no server is built
    operations=frozenset({"balance", "bet", "rollback"}),  # neutral names (operations.OPERATIONS)
    codes={0: (200, "OK"), 41: (200, "Broke"), 42: (200, "Try later")},
    neutral={"insufficient_funds": 41, "timeout": 42, "internal_error": 42},
    tenant_key="agent",
    player_key="username",
    amount_fields=("amount",),
    ambiguous=frozenset({42}),
    advice={"": "retry with the same id"},
)


@pytest.fixture
def toy() -> Iterator[Description]:
    registry.register(TOY)
    try:
        yield TOY
    finally:
        registry.unregister("toy")


def test_the_builtin_dialects_are_registered_in_order() -> None:
    assert registry.NAMES == ["xpro", "fizzy", "ambslot"]
    assert [d.name for d in registry.descriptions()] == registry.NAMES
    for d in registry.descriptions():
        assert set(d.neutral) == set(codes.NEUTRAL_NAMES), d.name
        assert set(d.neutral.values()) <= set(d.codes), d.name
        assert d.ambiguous <= set(d.codes) and d.owed <= d.operations and "" in d.advice
        assert registry.codec(d).name == d.name


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered already"):
        registry.register(registry.get("xpro"))


def test_the_shipped_scenario_schema_lists_the_builtin_dialects() -> None:
    shipped = json.loads((ROOT / "simulator" / "scenarios" / "schema.json").read_text())
    assert shipped["$defs"]["dialect"]["enum"] == [d.name for d in registry.BUILTIN]


def test_a_fourth_dialect_is_picked_up_by_the_loader_codes_and_openapi(toy: Description) -> None:
    rule = loader.parse_rule(
        "name: broke\nmatch: {dialect: toy, operation: rollback}\nrespond: {code: '41'}\n", "rule.yaml"
    )
    assert ("dialect", "toy") in rule.match.equal and rule.respond is not None and rule.respond["code"] == 41
    with pytest.raises(SourceError) as caught:
        loader.parse_rule("name: x\nmatch: {dialect: toy, operation: withdraw}\nrespond: {code: 99}\n", "r.yaml")
    problems = "\n".join(caught.value.problems)
    assert "toy has no operation 'withdraw'" in problems and "(balance, bet, rollback)" in problems
    assert codes.raw_code("toy", "42") == 42 and codes.raw_code("toy", 7) is None
    assert "toy" in openapi.DIALECT["enum"]


def test_the_toy_is_gone_after_unregistering() -> None:
    assert "toy" not in registry.NAMES
    with pytest.raises(SourceError):
        loader.parse_rule("name: x\nmatch: {dialect: toy}\nrespond: {code: 41}\n", "r.yaml")


def _dialect_name_branches(path: Path) -> list[str]:
    """``x == "xpro"``-style comparisons (and ``!=``, ``in``) against a registered dialect's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = [s.value for s in sides if isinstance(s, ast.Constant) and s.value in registry.NAMES]
            if names and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: compares with {names[0]!r}")
    return found


def test_no_branch_on_a_dialect_name_outside_the_dialect_modules() -> None:
    found = []
    for path in sorted((ROOT / "simulator").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if relative in DIALECT_MODULES:
            continue
        found += _dialect_name_branches(path)
    assert not found, "\n".join(found)
