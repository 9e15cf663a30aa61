"""The simulator as ``make bench`` runs it: ``python -m simulator serve`` (same settings, same start-up),
plus an optional preload of N transactions through the ledger's own API once the server is up.

Preloading is the bench-only shortcut to a big ledger: applying 1,000,000 transactions over HTTP takes
minutes on a small machine, so they are posted with ``Ledger.post`` (the call every dialect's ``perform``
makes) in the shapes the dialects store: an AMBSlot bet on its own tracked round, a Fizzy withdraw, an
XPro deposit, each with a fresh UUID id, a game code and a request fingerprint. The rows, indexes and
histories are the same as HTTP traffic leaves; the journal is not filled by them (it is bounded anyway).
The preload runs after start-up (and after its heap settling), so its memory is counted and collected
like traffic's. ``bench/run.py --grow-over-http`` grows the ledger over HTTP instead.

    python bench/server.py PORT SCENARIO_FILE PRELOAD
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sys
import uuid
from decimal import Decimal

from simulator.config import load as load_config
from simulator.scenarios import loader
from simulator.server.serve import serve
from simulator.service import Simulator


def preload(sim: Simulator, count: int, players: int = 50) -> None:
    """Post ``count`` transactions spread over the first ``players`` players of every dialect."""
    ledger, settings = sim.ledger, sim.settings
    tenants = {d: settings.tenants(d)[0] for d in ("xpro", "fizzy", "ambslot")}
    cent = Decimal("0.01")
    rng = random.Random(1)
    for n in range(count):
        dialect = ("ambslot", "fizzy", "xpro")[n % 3]
        player = ledger.player(dialect, tenants[dialect], f"b{n // 3 % players}")
        assert player is not None, "the bench scenario defines the players"
        txn_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        fingerprint = rng.getrandbits(63)
        with ledger.atomic():
            if dialect == "ambslot":
                ledger.post(
                    player, txn_id, "bet", scope="bet", debit=cent, round_id=f"pre-{n}", game="GH",
                    fingerprint=fingerprint, track_round=True,
                )  # fmt: skip
            elif dialect == "fizzy":
                fizzy = {"round_id": f"r{n}", "game": "g1", "fingerprint": fingerprint}
                ledger.post(player, txn_id, "withdraw", debit=cent, **fizzy)  # type: ignore[arg-type]
            else:
                ledger.post(player, txn_id, "deposit", credit=cent, fingerprint=fingerprint)


def main() -> None:
    port, scenario_path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    settings = load_config(None)
    server = dataclasses.replace(settings.server, host="127.0.0.1", port=port, log_requests=False)
    settings = dataclasses.replace(settings, server=server)
    scenario = loader.load_files([scenario_path], settings)
    kept: list[Simulator] = []
    asyncio.run(serve(settings, scenario, admin_token=None, keep=kept.append, ready=lambda _: preload(kept[0], count)))


if __name__ == "__main__":
    main()
