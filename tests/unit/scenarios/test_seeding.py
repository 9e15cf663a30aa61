"""scenarios.seeding: players into a ledger, given what it needs (no Simulator import)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from simulator import config
from simulator.ledger import Ledger
from simulator.scenarios import loader
from simulator.scenarios.model import Scenario
from simulator.scenarios.seeding import seed_players


@dataclass
class Given:
    ledger: Ledger
    scenario: Scenario
    settings: config.Settings


def test_explicit_and_generated_players_are_seeded_reproducibly() -> None:
    settings = config.build(None)
    scenario = loader.parse(
        "name: s\nseed: 7\nplayers:\n"
        "  - {dialect: fizzy, playerId: p-1, balance: 5, locked: true}\n"
        "  - generate: {dialect: ambslot, count: 3, balance: {min: 1, max: 2}}\n",
        "s.yaml",
        settings,
    )
    runs = []
    for _ in range(2):
        given = Given(Ledger(), scenario, settings)
        seed_players(given.ledger, given.settings, given.scenario)
        runs.append(sorted((p.dialect, p.id, p.balance) for p in given.ledger.players.values()))
    assert runs[0] == runs[1] and len(runs[0]) == 4
    fizzy = given.ledger.player("fizzy", "demo-public-key", "p-1")
    assert fizzy is not None and fizzy.balance == Decimal(5) and fizzy.locked
