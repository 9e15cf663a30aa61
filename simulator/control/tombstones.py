"""``GET /_sim/tombstones``: the rollbacks and cancels that arrived before what they name.

A Fizzy rollback of a withdraw not yet seen, or an AMBSlot cancel of a round with no bet, leaves a
tombstone; the late withdraw, bet or settle is then refused and changes nothing. The ledger keeps at most
``server.max_tombstones`` of them, forgetting the oldest first (``forgotten`` counts them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulator.control.http import page_reply, paging, sim_of
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
    """Tombstones, newest first (filters: dialect, player; paged: limit, cursor), with ``count`` (all that
    match), ``cap`` (server.max_tombstones) and ``forgotten`` (the oldest, dropped past the cap)."""
    cursor, limit = paging(request)
    q = request.query
    page, counters = await sim_of(request).store.read_tombstones(q.get("dialect"), q.get("player"), cursor, limit)
    return page_reply(request, {**counters, "tombstones": [tombstone_view(s) for s in page.items]}, page)


ROUTES: list[web.RouteDef] = [web.get("/tombstones", tombstones)]
