"""The core control calls: health, reset, players, transactions, journal, scenario, invariants.

Every answer is JSON with exact numbers, except ``GET /_sim/scenario`` (YAML text). Mistakes answer 400
with ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from aiohttp import web

from simulator import __version__, jsonio
from simulator.control import har
from simulator.control.http import (
    PREFIX,
    AdminError,
    count,
    dialect_of,
    find_player,
    json_body,
    money,
    page_reply,
    paging,
    query_int,
    read_body,
    reply,
    sim_of,
    tenant_of,
)
from simulator.dialects import registry
from simulator.dialects.xpro import iso_ms
from simulator.errors import SourceError
from simulator.journal import Entry
from simulator.ledger import Player, Transaction
from simulator.scenarios import loader
from simulator.scenarios.model import Match
from simulator.service import PlayerChange, PlayerConflict, Simulator

log = logging.getLogger("simulator.admin")
FLAGS = ("locked", "blocked", "disabled", "session_expired", "reality_check")
VERIFY_FORBIDDEN = ("nth", "after", "probability")


def player_view(player: Player, transactions: list[Transaction] | None = None) -> dict[str, Any]:
    """A player as the control API shows it; with ``transactions`` (newest first) under ``transactions``."""
    view: dict[str, Any] = {
        "dialect": player.dialect,
        "tenant": player.tenant,
        "player": player.id,
        "balance": player.balance,
        "currency": player.currency,
        **player.flags(),
        "sessions": sorted(player.sessions),
        **({"site_id": player.site_id} if player.site_id is not None else {}),
        "created": iso_ms(player.created),
        "updated": iso_ms(player.updated),
    }
    if transactions is not None:
        view["transactions"] = [txn_view(t) for t in transactions]
    return view


def txn_view(txn: Transaction) -> dict[str, Any]:
    return {
        "seq": txn.seq,
        "dialect": txn.dialect,
        "tenant": txn.tenant,
        "player": txn.player,
        "transaction": txn.id,
        "kind": txn.kind,
        "amount": txn.amount,
        "debit": txn.debit,
        "credit": txn.credit,
        "balance_before": txn.balance_before,
        "balance_after": txn.balance_after,
        "status": txn.status,
        "round": txn.round,
        "game": txn.game,
        "ref": txn.ref,
        "reversed_by": txn.reversed_by.id if txn.reversed_by is not None else None,
        "time": iso_ms(txn.time),
    }


def match_from(spec: Any, sim: Simulator) -> Match:
    """A journal-verify match: the scenario match keys but nth / after / probability."""
    if not isinstance(spec, dict):
        raise AdminError(400, "match must be an object of scenario match keys")
    bad = [k for k in VERIFY_FORBIDDEN if k in spec]
    if bad:
        raise AdminError(400, f"{', '.join(bad)} make no sense when counting recorded requests")
    text = jsonio.dumps({"name": "verify", "rules": [{"match": spec, "delay": "0ms"}]})
    try:
        scenario = loader.parse(text, "(match)", sim.settings)
    except SourceError as exc:
        raise AdminError(400, "invalid match: " + "; ".join(p.split(": ", 1)[-1] for p in exc.problems)) from None
    return scenario.rules[0].match


async def health(request: web.Request) -> web.Response:
    """Liveness and identity: status ok, version, dialects, loaded scenario (never needs the admin token)."""
    sim = sim_of(request)
    store = await sim.store_health()  # a shared store that does not answer: 503, "store": {"ok": false}
    return reply(
        {
            "status": "ok" if store["ok"] else "store unavailable",
            "version": __version__,
            "dialects": list(registry.NAMES),
            "scenario": sim.scenario.name,
            "store": store,
        },
        200 if store["ok"] else 503,
    )


async def reset(request: web.Request) -> web.Response:
    """Back to the start: scenario players, no transactions, empty journal, rule counters at zero."""
    sim = sim_of(request)
    await sim.reset()
    players = await sim.store.count_players()
    log.info("reset: %d players", players, extra={"fields": {"action": "reset"}})
    return reply({"ok": True, "players": players})


async def players(request: web.Request) -> web.Response:
    """Players with balance, currency, flags and sessions (filters: dialect, q; paged: limit, cursor)."""
    cursor, limit = paging(request)
    q = request.query
    page = await sim_of(request).store.read_players(q.get("dialect"), q.get("q"), cursor, limit)
    return page_reply(request, [player_view(p) for p in page.items], page)


async def get_player(request: web.Request) -> web.Response:
    """One player with its transactions, newest first (paged: limit, cursor)."""
    cursor, limit = paging(request)
    player, page = await find_player(request, cursor, limit)
    return page_reply(request, player_view(player, page.items), page)


async def put_player(request: web.Request) -> web.Response:
    """Create (201) or update (200) a player: balance, currency, flags, bet limit, sessions, tenant."""
    sim = sim_of(request)
    dialect = dialect_of(request)
    body = await json_body(request)
    tenant_key = registry.get(dialect).tenant_key
    allowed = {"balance", "currency", "bet_limit", "sessions", tenant_key, *FLAGS}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AdminError(
            400, f"unknown {'field' if len(unknown) == 1 else 'fields'} {unknown}; allowed: {sorted(allowed)}"
        )
    tenant = tenant_of(sim, dialect, body.get(tenant_key))
    for flag in FLAGS:
        if flag in body and not isinstance(body[flag], bool):
            raise AdminError(400, f"{flag} must be true or false")
    if "balance" in body and body["balance"] is None:
        raise AdminError(400, "balance must be a number")
    balance = money(body, "balance")
    bet_limit = money(body, "bet_limit")  # None (absent or null) lifts the limit
    currency = body.get("currency")
    if currency is not None and (not isinstance(currency, str) or not currency):
        raise AdminError(400, "currency must be a non-empty string")
    sessions = body.get("sessions", [])
    if not isinstance(sessions, list) or not all(isinstance(s, str) and s for s in sessions):
        raise AdminError(400, "sessions must be a list of session ids")
    change = PlayerChange(
        balance=balance,
        currency=currency,
        bet_limit=bet_limit,
        bet_limit_given="bet_limit" in body,
        flags=tuple((flag, body[flag]) for flag in FLAGS if flag in body),
        sessions=tuple(sessions),
    )
    try:
        player, created = await sim.put_player(dialect, tenant, request.match_info["player"], change)
    except PlayerConflict as exc:
        raise AdminError(409, str(exc)) from None
    log_player_change(player, created, {k: v for k, v in body.items() if k != tenant_key})
    return reply(player_view(player), 201 if created else 200)


def log_player_change(player: Player, created: bool, changed: dict[str, Any]) -> None:
    where = f"{player.dialect}/{player.tenant}/{player.id}"
    log.info(
        "player %s %s: %s",
        "created" if created else "changed",
        where,
        ", ".join(f"{k}={v}" for k, v in changed.items()) or "no change",
        extra={
            "fields": {
                "action": "player",
                "dialect": player.dialect,
                "tenant": player.tenant,
                "player": player.id,
                "fields": changed,
            }
        },
    )


async def transactions(request: web.Request) -> web.Response:
    """The ledger, newest first (filters: dialect, player, status; paged: limit, cursor)."""
    cursor, limit = paging(request)
    q = request.query
    store = sim_of(request).store
    page = await store.read_transactions(q.get("dialect"), q.get("player"), q.get("status"), cursor, limit)
    return page_reply(request, [txn_view(t) for t in page.items], page)


async def journal(request: web.Request) -> web.Response:
    """Recorded requests, oldest first (filters: limit, dialect, operation, player, rule; format=har)."""
    q = request.query
    entries = sim_of(request).journal.query(
        dialect=q.get("dialect"),
        operation=q.get("operation"),
        player=q.get("player"),
        rule=q.get("rule"),
        limit=query_int(q.get("limit"), "limit"),
    )
    if q.get("format") == "har":
        settings = sim_of(request).settings
        prefixes = {d: getattr(settings, d).prefix for d in registry.NAMES}
        return reply(har.archive(entries, f"{request.scheme}://{request.host}", prefixes))
    if q.get("format", "json") != "json":
        raise AdminError(400, "format must be json (the default) or har")
    return reply([e.to_dict() for e in entries])


async def clear_journal(request: web.Request) -> web.Response:
    """Empty the journal."""
    await sim_of(request).clear_journal()
    log.info("journal cleared", extra={"fields": {"action": "clear_journal"}})
    return reply({"ok": True})


async def verify(request: web.Request) -> web.Response:
    """Count the recorded requests matching scenario match keys: 200 ok, or 409 with the closest misses."""
    sim = sim_of(request)
    body = await json_body(request)
    match = match_from(body.get("match", {}), sim)
    given = {k: count(body, k) for k in ("count", "min", "max")}
    bounds = {k: v for k, v in given.items() if v is not None}
    if not bounds:
        raise AdminError(400, "give count, or min and/or max")
    entries = list(sim.journal)
    hits = [e for e in entries if e.op is not None and match.holds(e.op)]
    n = len(hits)
    ok = (
        ("count" not in bounds or n == bounds["count"])
        and ("min" not in bounds or n >= bounds["min"])
        and ("max" not in bounds or n <= bounds["max"])
    )
    if ok:
        return reply({"ok": True, "found": n})
    closest = hits[:5] if hits else _closest(entries, match)
    misses = [miss_line(e, match) for e in closest]
    answer = {"ok": False, "found": n, "expected": bounds, "misses": misses, "closest": [e.to_dict() for e in closest]}
    return reply(answer, 409)


async def get_scenario(request: web.Request) -> web.Response:
    """The loaded scenario as YAML."""
    return web.Response(text=loader.dump(sim_of(request).scenario), content_type="application/yaml")


async def put_scenario(request: web.Request) -> web.Response:
    """Replace the scenario (YAML body) and reset to its starting state; 400 with problems if invalid."""
    sim = sim_of(request)
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdminError(400, f"the scenario is not UTF-8 text: {exc}") from None
    try:  # in a thread: a large file takes a while to parse, and the dialects keep answering meanwhile
        scenario = await asyncio.to_thread(loader.parse_body, text, "(PUT /_sim/scenario)", sim.settings)
    except SourceError as exc:
        raise AdminError(400, str(exc), problems=exc.problems) from None
    await sim.replace_scenario(scenario)
    log.info(
        "scenario replaced: %s (%d rules)",
        scenario.name,
        len(scenario.rules),
        extra={"fields": {"action": "scenario", "scenario": scenario.name, "rules": len(scenario.rules)}},
    )
    players = await sim.store.count_players()
    answer = {"ok": True, "name": scenario.name, "rules": len(scenario.rules), "players": players}
    return reply({**answer, "warnings": scenario.warnings} if scenario.warnings else answer)


async def invariants(request: web.Request) -> web.Response:
    """Ledger self-check: 200 ok, or 409 with the offenders."""
    result = await sim_of(request).store.read_invariants()
    return reply(result, 200 if result["ok"] else 409)


async def not_found(request: web.Request) -> web.Response:
    raise AdminError(404, f"no control call {request.method} {request.path}; see GET {PREFIX}/health")


def _closest(entries: list[Entry], match: Match) -> list[Entry]:
    """The recorded requests that miss the match on the fewest keys, newest first among equals."""

    def misses(entry: Entry) -> int:
        return len(match.misses(entry.op)) if entry.op is not None else len(match.equal) + 3

    scored = sorted((misses(e), -e.seq, i) for i, e in enumerate(entries))
    return [entries[i] for _, _, i in scored[:5]]


def miss_line(entry: Entry, match: Match) -> str:
    """One recorded request and how it differs from the match, e.g.
    ``#7 xpro /v2/members/transaction deposit player001 T-1 -> 0: operation: expected 'withdraw', got 'deposit'``.
    Identifiers and codes only: never a request body, so no secret or token is shown."""
    op = entry.op
    what = " ".join(str(v) for v in (entry.operation, entry.player, entry.transaction) if v is not None)
    head = f"#{entry.seq} {entry.dialect} {entry.endpoint} {what}".rstrip() + f" -> {entry.code}"
    if op is None:
        return f"{head}: refused before it was decoded ({entry.detail or 'no detail'})"
    found = match.misses(op)
    if not found:
        return f"{head}: matches (counted)"
    shown = [(key, want, got if isinstance(got, Decimal) else repr(got)) for key, want, got in found]
    return f"{head}: " + "; ".join(f"{key}: expected {want}, got {got}" for key, want, got in shown)


ROUTES: list[web.RouteDef] = [
    web.get("/health", health),
    web.post("/reset", reset),
    web.get("/players", players),
    web.get("/players/{dialect}/{player}", get_player),
    web.put("/players/{dialect}/{player}", put_player),
    web.get("/transactions", transactions),
    web.get("/journal", journal),
    web.delete("/journal", clear_journal),
    web.post("/journal/verify", verify),
    web.get("/scenario", get_scenario),
    web.put("/scenario", put_scenario),
    web.get("/invariants", invariants),
]
