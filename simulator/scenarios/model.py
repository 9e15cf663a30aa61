"""Scenario objects: matches, delays and rules, small and composable, each with an explicit lifetime."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simulator.operations import STATUS_CHECKS, Operation
from simulator.scenarios.patterns import Pattern


def duration(text: str) -> float:
    """``250ms`` -> 0.25, ``2s`` -> 2.0 (validated by the schema's pattern before it gets here)."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])


@dataclass(frozen=True)
class Delay:
    kind: str  # fixed | uniform | lognormal
    a: float  # fixed value, uniform min, or lognormal median (seconds)
    b: float = 0.0  # uniform max
    sigma: float = 0.0
    cap: float | None = None

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        value = self.a * math.exp(self.sigma * rng.gauss(0.0, 1.0))
        return min(value, self.cap) if self.cap is not None else value


COMPARISONS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
}

EQUALITY_KEYS = ("dialect", "operation", "endpoint", "agent", "player", "round", "game", "currency")


@dataclass(frozen=True)
class Match:
    """The static part of a rule's match: every key given must hold on the decoded operation."""

    equal: tuple[tuple[str, str], ...] = ()
    transaction: Pattern | None = None  # RE2, linear time (see simulator.scenarios.patterns)
    amount: tuple[tuple[str, Decimal], ...] = ()
    nth: int | None = None
    after: int | None = None
    probability: float | None = None

    @property
    def names_operation(self) -> bool:
        """The match says which operation (or endpoint) it is for: only then does it match status checks."""
        return any(key in ("operation", "endpoint") for key, _ in self.equal)

    def holds(self, op: Operation) -> bool:
        if op.operation in STATUS_CHECKS and not self.names_operation:
            return False
        for key, expected in self.equal:
            if getattr(op, key) != expected:
                return False
        if self.transaction is not None and (op.transaction is None or not self.transaction.search(op.transaction)):
            return False
        if self.amount:
            if op.amount is None:
                return False
            return all(COMPARISONS[name](op.amount, bound) for name, bound in self.amount)
        return True

    def misses(self, op: Operation) -> list[tuple[str, str, Any]]:
        """Every static key that does not hold on ``op``: ``(key, what was expected, what op has)``."""
        found: list[tuple[str, str, Any]] = [
            (key, repr(expected), getattr(op, key)) for key, expected in self.equal if getattr(op, key) != expected
        ]
        if op.operation in STATUS_CHECKS and not self.names_operation:
            found.append(("operation", "named (a status check matches only a rule that names it)", op.operation))
        if self.transaction is not None and (op.transaction is None or not self.transaction.search(op.transaction)):
            found.append(("transaction", f"/{self.transaction.pattern}/", op.transaction))
        failed = [
            f"{name} {bound}"
            for name, bound in self.amount
            if op.amount is None or not COMPARISONS[name](op.amount, bound)
        ]
        if failed:
            found.append(("amount", " and ".join(failed), op.amount))
        return found


@dataclass(eq=False)
class Rule:
    name: str
    match: Match
    respond: dict[str, Any] | None = None
    delay: Delay | None = None
    duplicate: bool = False
    fault: str | None = None
    apply: bool = False
    times: int | None = None
    rng_seed: str = ""
    definition: dict[str, Any] = field(default_factory=dict)  # the rule as written (GET /_sim/rules)
    # run-time state, reset with the simulator
    seen: int = 0
    hits: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def reset(self) -> None:
        self.seen = 0
        self.hits = 0
        self.rng = random.Random(self.rng_seed)

    @property
    def retired(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def fires(self, op: Operation) -> bool:
        """Count the request if the static match holds, then apply nth / after / probability."""
        if self.retired or not self.match.holds(op):
            return False
        self.seen += 1
        m = self.match
        if m.nth is not None and self.seen != m.nth:
            return False
        if m.after is not None and self.seen <= m.after:
            return False
        if m.probability is not None and self.rng.random() >= m.probability:
            return False
        self.hits += 1
        return True


@dataclass
class Scenario:
    name: str
    description: str = ""
    seed: int = 0
    players: list[dict[str, Any]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    text: str = ""  # YAML as loaded (GET /_sim/scenario)
    warnings: list[str] = field(default_factory=list)  # "file:line: key: warning: ..." of a valid file

    @classmethod
    def empty(cls) -> Scenario:
        return cls(name="(none)", text="name: (none)\n")
