"""``python -m simulator generate``: the same players for the same seed, the same as a ``generate:`` entry of
a scenario with that seed, valid ids (no timing assertion: speed is measured, not tested)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from simulator import config
from simulator.scenarios import loader
from simulator.service import Simulator


def generate(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "generate", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_same_seed_gives_the_same_players() -> None:
    first = generate("xpro", "--count", "20000", "--seed", "7", "--balance", "1:2")
    assert first == generate("xpro", "--count", "20000", "--seed", "7", "--balance", "1:2")
    assert first != generate("xpro", "--count", "20000", "--seed", "8", "--balance", "1:2")
    header, *rows = first.splitlines()
    assert header == "dialect,tenant,player,currency,balance" and len(rows) == 20000
    ids = [row.split(",")[2] for row in rows]
    assert len(set(ids)) == 20000
    assert all(i.isalnum() and i.isascii() and len(i) <= 25 for i in ids)
    balances = [Decimal(row.split(",")[4]) for row in rows]
    assert all(Decimal(1) <= b <= Decimal(2) and b == b.quantize(Decimal("0.01")) for b in balances)
    assert {row.split(",")[1] for row in rows} == {"demo"} and {row.split(",")[3] for row in rows} == {"THB"}


def test_the_listing_names_the_players_a_generate_entry_creates(tmp_path: Path) -> None:
    listed = generate("fizzy", "--count", "500", "--seed", "3", "--balance", "10:20", "--format", "yaml")
    path = tmp_path / "players.yaml"
    path.write_text(listed)
    settings = config.build(None)
    explicit = Simulator(settings, loader.read(str(path), settings))
    entry = "name: g\nseed: 3\nplayers:\n  - generate: {dialect: fizzy, count: 500, balance: {min: 10, max: 20}}\n"
    generated = Simulator(settings, loader.parse(entry, "g.yaml", settings))

    def players(sim: Simulator) -> list[tuple[str, Decimal]]:
        return [(p.id, p.balance) for p in sim.ledger.players.values()]

    assert players(explicit) == players(generated) and len(players(generated)) == 500


def test_a_bad_balance_or_tenant_is_refused() -> None:
    for argv, message in (
        (["--balance", "5:1"], "MIN must not be negative nor larger than MAX"),
        (["--balance", "abc"], "'abc' is not an amount"),
        (["--tenant", "nobody"], "'nobody' is not a configured ambslot tenant"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "simulator", "generate", "ambslot", "--count", "3", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
