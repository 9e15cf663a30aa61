"""Putting a scenario's players into the ledger: explicit ones, and Faker-generated ones (seeded)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from simulator.config import Settings
from simulator.dialects import registry
from simulator.ledger import Ledger
from simulator.scenarios.model import Scenario

FLAGS = ("locked", "blocked", "disabled", "session_expired", "reality_check", "bet_limit")


def _open(
    ledger: Ledger,
    dialect: str,
    tenant: str,
    pid: str,
    currency: str,
    balance: Decimal,
    flags: dict[str, Any],
) -> None:
    existing = ledger.player(dialect, tenant, pid)
    if existing is not None:  # a later file overrides an earlier one, sessions included
        ledger.discard(existing)
    sessions = flags.pop("sessions", ())
    player = ledger.open(dialect, tenant, pid, currency, balance, **flags)
    for session in sessions:  # bound like a session seen on the wire, so no other player can take it
        ledger.unbind_session(dialect, tenant, session)  # the last player given a session keeps it
        ledger.bind_session(player, session)


def seed_players(ledger: Ledger, settings: Settings, scenario: Scenario) -> None:
    """Open the scenario's players in the ledger (given, not imported: seeding knows no pipeline)."""
    for entry in scenario.players:
        if "generate" in entry:
            generate(ledger, settings, entry["generate"], entry["seed"], entry["index"])
            continue
        dialect = entry["dialect"]
        tenant_key = registry.get(dialect).tenant_key
        pid = entry[registry.get(dialect).player_key]
        tenant, currency, balance = settings.new_player(dialect, entry.get(tenant_key))
        flags = {k: entry[k] for k in FLAGS if k in entry}
        flags["sessions"] = entry.get("sessions", [])
        balance = entry.get("balance", balance)
        _open(ledger, dialect, tenant, pid, entry.get("currency") or currency, balance, flags)


_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
NAME_CHARS = 18  # a generated name is at most this long, so that a numeric suffix keeps XPro's 25


def _words() -> tuple[list[str], list[float], list[str], list[float]]:
    """Faker's en_US first and last names with their weights, read once (no Faker instance per player)."""
    from faker.providers.person.en_US import Provider  # imported here: ~70 ms, only generation needs it

    firsts, lasts = Provider.first_names, Provider.last_names
    return list(firsts), [float(w) for w in firsts.values()], list(lasts), [float(w) for w in lasts.values()]


def names(key: str, count: int) -> list[str]:
    """``count`` user names, the same for the same ``key``: Faker's user-name shapes (``last.first``,
    ``first.last``, ``first##``, ``?last``) lower-cased and cut to letters and digits, built from its word
    lists with one seeded generator. Vectorised draws: 100,000 names take a fraction of a second."""
    firsts, first_weights, lasts, last_weights = _words()
    rng = random.Random(key)
    first = rng.choices(firsts, first_weights, k=count)
    last = rng.choices(lasts, last_weights, k=count)
    shapes = rng.choices(range(4), k=count)
    digits = rng.choices(range(100), k=count)
    letters = rng.choices("abcdefghijklmnopqrstuvwxyz", k=count)
    out = []
    for f, la, shape, d, letter in zip(first, last, shapes, digits, letters, strict=True):
        if shape == 0:
            name = la + f
        elif shape == 1:
            name = f + la
        elif shape == 2:
            name = f"{f}{d:02d}"
        else:
            name = letter + la
        if not name.isalnum() or not name.isascii():
            name = _NOT_ALNUM.sub("", name) or "player"
        out.append(name.lower()[:NAME_CHARS])
    return out


def generated(
    spec: dict[str, Any], seed: int, index: int, default: Decimal, taken: set[str]
) -> Iterator[tuple[str, Decimal]]:
    """``(player id, balance)`` of a ``generate:`` entry: ids unique among ``taken`` (which grows), balances
    drawn uniformly in whole cents from ``{min, max}`` (or one fixed amount, else ``default``)."""
    rng = random.Random(f"{seed}/balances/{index}")
    bounds = spec.get("balance")
    if isinstance(bounds, dict):
        low, span = int(bounds["min"] * 100), int(bounds["max"] * 100) - int(bounds["min"] * 100) + 1
        draw = rng.random  # whole cents, uniform in [min, max]: one float draw each (randint is 3x slower)
        balances: Iterator[Decimal] = (Decimal(low + int(draw() * span)).scaleb(-2) for _ in range(spec["count"]))
    else:
        balances = itertools.repeat(bounds if bounds is not None else default, spec["count"])
    for n, (name, amount) in enumerate(zip(names(f"{seed}/players/{index}", spec["count"]), balances, strict=True)):
        pid = name
        while pid in taken:
            pid = f"{name}{n}"[:25] if pid == name else f"{name[:14]}{rng.randrange(10**10)}"
        taken.add(pid)
        yield pid, amount


def generate(ledger: Ledger, settings: Settings, spec: dict[str, Any], seed: int, index: int) -> None:
    """``count`` players with Faker-shaped user names and balances drawn uniformly in whole cents,
    reproducible for a given seed. Names are letters and digits (at most 25), as XPro requires."""
    dialect = spec["dialect"]
    tenant, currency, balance = settings.new_player(dialect, spec.get(registry.get(dialect).tenant_key))
    currency = spec.get("currency") or currency
    taken = {p.id for p in ledger.players.values() if p.dialect == dialect and p.tenant == tenant}
    for pid, amount in generated(spec, seed, index, balance, taken):
        _open(ledger, dialect, tenant, pid, currency, amount, {})


def listing(
    settings: Settings,
    dialect: str,
    count: int,
    seed: int,
    balance: Any,
    currency: str | None,
    tenant: str | None,
    fmt: str,
) -> str:
    """``count`` generated players as text (``python -m simulator generate``): the same players as a
    ``generate:`` entry first in a scenario with the same ``seed``. ``csv``: ``dialect,tenant,player,currency,
    balance`` lines (for seeding your own side); ``yaml``: a scenario file of explicit players."""
    if tenant is not None and tenant not in settings.tenants(dialect):
        known = settings.tenants(dialect)
        raise ValueError(f"--tenant: {tenant!r} is not a configured {dialect} tenant (configured: {', '.join(known)})")
    tenant, default_currency, default_balance = settings.new_player(dialect, tenant)
    currency = currency or default_currency
    spec = {"dialect": dialect, "count": count, "balance": balance}
    players = generated(spec, seed, 0, default_balance, set())
    if fmt == "csv":
        lines = ["dialect,tenant,player,currency,balance"]
        lines += [f"{dialect},{tenant},{pid},{currency},{amount}" for pid, amount in players]
        return "\n".join(lines) + "\n"
    described = registry.get(dialect)
    name_key, tenant_key = described.player_key, described.tenant_key
    lines = [f"name: generated-{dialect}-{count}", f"seed: {seed}", "players:"]
    lines += [
        f"  - {{dialect: {dialect}, {tenant_key}: '{tenant}', {name_key}: '{pid}', currency: '{currency}', "
        f"balance: '{amount}'}}"
        for pid, amount in players
    ]
    return "\n".join(lines) + "\n"
