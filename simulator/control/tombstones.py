"""``GET /_sim/tombstones``: the rollbacks and cancels that arrived before what they name.

A Fizzy rollback of a withdraw not yet seen, or an AMBSlot cancel of a round with no bet, leaves a
tombstone; the late withdraw, bet or settle is then refused and changes nothing. The ledger keeps at most
``server.max_tombstones`` of them, forgetting the oldest first (``forgotten`` counts them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulator.control.http import query_int, reply, sim_of
from simulator.dialects.xpro import iso_ms
from simulator.ledger import Tombstone


def tombstone_view(stone: Tombstone) -> dict[str, Any]:
    return {
        "dialect": stone.dialect,
        "tenant": stone.tenant,
        "player": stone.player,
        "transaction": stone.transaction,  # Fizzy: the withdraw id that is refused if it arrives
        "round": stone.round,  # AMBSlot: the round on which a bet or settle is refused
        "by": stone.by,  # the rollback or cancel that left it
        "time": iso_ms(stone.time),
        "refused": stone.refused,  # late arrivals refused so far
    }


async def tombstones(request: web.Request) -> web.Response:
    q = request.query
    limit = query_int(q.get("limit"), "limit")
    ledger = sim_of(request).ledger
    found = [
        tombstone_view(s)
        for s in ledger.tombstones()
        if (not q.get("dialect") or s.dialect == q["dialect"]) and (not q.get("player") or s.player == q["player"])
    ]
    return reply(
        {
            "count": len(found),
            "cap": ledger.max_tombstones,
            "forgotten": ledger.tombstones_forgotten,
            "tombstones": found[:limit] if limit else found,
        }
    )


ROUTES: list[web.RouteDef] = [web.get("/tombstones", tombstones)]
