"""Putting a scenario's players into the ledger: explicit ones, and Faker-generated ones (seeded)."""

from __future__ import annotations

import random
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from simulator.dialects import registry

if TYPE_CHECKING:
    from simulator.config import Settings
    from simulator.ledger import Ledger
    from simulator.scenarios.model import Scenario


class Simulator(Protocol):
    """What seeding needs of the simulator (given, not imported: the service imports this module)."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def scenario(self) -> Scenario: ...
    @property
    def settings(self) -> Settings: ...


FLAGS = ("locked", "blocked", "disabled", "session_expired", "reality_check", "bet_limit")


def _open(
    sim: Simulator,
    dialect: str,
    tenant: str,
    pid: str,
    currency: str,
    balance: Decimal,
    flags: dict[str, Any],
) -> None:
    existing = sim.ledger.player(dialect, tenant, pid)
    if existing is not None:  # a later file overrides an earlier one, sessions included
        sim.ledger.discard(existing)
    sessions = flags.pop("sessions", ())
    player = sim.ledger.open(dialect, tenant, pid, currency, balance, **flags)
    for session in sessions:  # bound like a session seen on the wire, so no other player can take it
        sim.ledger.unbind_session(dialect, tenant, session)  # the last player given a session keeps it
        sim.ledger.bind_session(player, session)


def seed_players(sim: Simulator) -> None:
    for entry in sim.scenario.players:
        if "generate" in entry:
            generate(sim, entry["generate"], entry["seed"], entry["index"])
            continue
        dialect = entry["dialect"]
        tenant_key = registry.get(dialect).tenant_key
        pid = entry[registry.get(dialect).player_key]
        tenant, currency, balance = sim.settings.new_player(dialect, entry.get(tenant_key))
        flags = {k: entry[k] for k in FLAGS if k in entry}
        flags["sessions"] = entry.get("sessions", [])
        balance = entry.get("balance", balance)
        _open(sim, dialect, tenant, pid, entry.get("currency") or currency, balance, flags)


_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def generate(sim: Simulator, spec: dict[str, Any], seed: int, index: int) -> None:
    """``count`` players with Faker user names and balances drawn uniformly in whole cents, reproducible
    for a given seed. XPro names are cut to letters and digits (at most 25), as the protocol requires."""
    from faker import Faker  # imported here: it costs ~70 ms of start-up and only generation needs it

    dialect = spec["dialect"]
    tenant, currency, balance = sim.settings.new_player(dialect, spec.get(registry.get(dialect).tenant_key))
    currency = spec.get("currency") or currency
    fake = Faker()
    fake.seed_instance(f"{seed}/players/{index}")
    rng = random.Random(f"{seed}/balances/{index}")
    bounds = spec.get("balance")
    taken = {p.id for p in sim.ledger.players.values() if p.dialect == dialect and p.tenant == tenant}
    for n in range(spec["count"]):
        name = _NOT_ALNUM.sub("", fake.user_name())[:18] or "player"
        pid = name
        while pid in taken:
            pid = f"{name}{n}"[:25] if pid == name else f"{name[:14]}{rng.randrange(10**10)}"
        taken.add(pid)
        if isinstance(bounds, dict):
            cents = rng.randint(int(bounds["min"] * 100), int(bounds["max"] * 100))
            amount = Decimal(cents).scaleb(-2)
        else:
            amount = bounds if bounds is not None else balance
        _open(sim, dialect, tenant, pid, currency, amount, {})
