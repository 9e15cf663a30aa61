"""The scenario engine: for each decoded operation, the first rule that fires decides what happens.

Rules can also be added, replaced and removed one at a time while requests flow (``/_sim/rules``). Every
change builds a new list and swaps it in with one assignment, and nothing here awaits, so a request being
decided on the event loop sees either the old rule set or the new one, never half of a change. Counters
belong to the rule objects, so changing one rule leaves the others' counts (and the ledger) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.errors import Injected, SimulatorError
from simulator.operations import Operation
from simulator.scenarios.model import Rule, Scenario


@dataclass(slots=True)
class Decision:
    rule: str
    delay: float = 0.0
    respond: Injected | None = None
    duplicate: bool = False
    fault: str | None = None
    apply: bool = False

    @property
    def intervenes(self) -> bool:
        """Whether the rule replaces the normal answer (otherwise it only delays it)."""
        return self.respond is not None or self.duplicate or self.fault is not None


class RuleConflict(SimulatorError):
    """A run-time rule change that cannot be done: unknown name, taken name, position out of range."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # missing | taken | ambiguous | position


class Engine:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.reset()

    @property
    def rules(self) -> list[Rule]:
        return self.scenario.rules

    def reset(self) -> None:
        for rule in self.scenario.rules:
            rule.reset()

    # run-time rule control

    def index_of(self, name: str) -> int:
        found = [i for i, rule in enumerate(self.scenario.rules) if rule.name == name]
        if not found:
            raise RuleConflict(f"no rule named {name!r}", "missing")
        if len(found) > 1:
            raise RuleConflict(f"{len(found)} rules are named {name!r}; load a scenario with unique names", "ambiguous")
        return found[0]

    def add(self, rule: Rule, position: int | None = None) -> int:
        """Insert a fresh rule (counters at zero) before ``position``, or last; returns where it went."""
        rules = list(self.scenario.rules)
        if any(r.name == rule.name for r in rules):
            raise RuleConflict(
                f"a rule named {rule.name!r} exists; replace it with PUT or choose another name", "taken"
            )
        where = len(rules) if position is None else position
        if not 0 <= where <= len(rules):
            raise RuleConflict(f"position must be between 0 and {len(rules)}", "position")
        rule.reset()
        rules.insert(where, rule)
        self.scenario.rules = rules
        return where

    def replace(self, name: str, rule: Rule) -> int:
        """Put ``rule`` where the rule ``name`` is; it may carry a new name if no other rule has it."""
        where = self.index_of(name)
        rules = list(self.scenario.rules)
        if rule.name != name and any(r.name == rule.name for r in rules):
            raise RuleConflict(f"a rule named {rule.name!r} exists already", "taken")
        rule.reset()
        rules[where] = rule
        self.scenario.rules = rules
        return where

    def remove(self, name: str) -> Rule:
        where = self.index_of(name)
        rules = list(self.scenario.rules)
        removed = rules.pop(where)
        self.scenario.rules = rules
        return removed

    def report(self) -> dict[str, Any]:
        """Every rule in evaluation order with its counters, and the names of those that never fired."""
        rules = [
            {
                "name": rule.name,
                "position": index,
                "hits": rule.hits,
                "seen": rule.seen,
                "remaining": None if rule.times is None else max(rule.times - rule.hits, 0),
                "definition": rule.definition,
            }
            for index, rule in enumerate(self.scenario.rules)
        ]
        return {"rules": rules, "never_fired": [r["name"] for r in rules if not r["hits"]]}

    def decide(self, op: Operation) -> Decision | None:
        for rule in self.scenario.rules:
            if rule.fires(op):
                return self._decision(rule)
        return None

    @staticmethod
    def _decision(rule: Rule) -> Decision:
        respond = None
        if rule.respond is not None:
            r = rule.respond
            respond = Injected(
                error=r.get("error"),
                code=r.get("code"),
                message=r.get("message"),
                http_status=r.get("http_status"),
            )
        intervenes = respond is not None or rule.duplicate or rule.fault is not None
        return Decision(
            rule=rule.name,
            delay=rule.delay.sample(rule.rng) if rule.delay else 0.0,
            respond=respond,
            duplicate=rule.duplicate,
            fault=rule.fault,
            # a rule that only delays always applies; one that intervenes applies only when told to
            apply=rule.apply if intervenes else True,
        )
