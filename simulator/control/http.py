"""What every control-API handler shares: the error type, JSON replies, body parsing and lookups.

Handlers anywhere (the core routes, the scorecard, the dashboard) take the running simulator from the
request with :func:`sim_of`, raise :class:`AdminError` for a mistake, and answer with :func:`reply`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from simulator import jsonio
from simulator.dialects import registry
from simulator.ledger import Player, Transaction
from simulator.money import parse_amount
from simulator.server import netserve
from simulator.service import Simulator
from simulator.store import DEFAULT_PAGE, MAX_PAGE, Page

PREFIX = "/_sim"
MAX_COUNT = 10**9
WHOLE = re.compile(r"[0-9]{1,9}")
NEXT_CURSOR = "X-Next-Cursor"
SIM = web.AppKey("control_simulator", Simulator)


class AdminError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


def sim_of(request: web.Request) -> Simulator:
    return request.config_dict[SIM]


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    try:
        body = jsonio.dumpb(data)
    except (TypeError, orjson.JSONEncodeError):  # recorded data that is not clean JSON: repaired, never a 500
        body = jsonio.dumpb(jsonio.printable(data, limit=jsonio.MAX_DEPTH * 3))
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def paging(request: web.Request) -> tuple[str | None, int]:
    """A listing's ``cursor`` (None: the first page) and ``limit`` (the page size: 1 to MAX_PAGE, absent or
    0 for DEFAULT_PAGE). The store checks the cursor (BadCursor: 400)."""
    raw = request.query.get("limit", "")
    if raw not in ("", "0") and not (WHOLE.fullmatch(raw) and int(raw) <= MAX_PAGE):
        more = f"follow {NEXT_CURSOR} for more"
        raise AdminError(400, f"limit must be a whole number from 1 to {MAX_PAGE} (default {DEFAULT_PAGE}); {more}")
    return request.query.get("cursor") or None, int(raw) if raw not in ("", "0") else DEFAULT_PAGE


def page_reply(request: web.Request, data: Any, page: Page[Any]) -> web.Response:
    """``data`` (the body, unchanged by paging) with the next page's cursor in ``X-Next-Cursor`` and a
    ``Link: <...>; rel="next"`` to the same call with that cursor; neither on the last page."""
    if page.next is None:
        return reply(data)
    following = request.rel_url.update_query(cursor=page.next)
    return reply(data, headers={NEXT_CURSOR: page.next, "Link": f'<{following}>; rel="next"'})


async def read_body(request: web.Request) -> bytes:
    """The body, read within ``server.request_timeout`` (408 otherwise)."""
    try:
        return await netserve.read_body(request, sim_of(request).settings.server.request_timeout)
    except netserve.BodyTimeout as exc:
        raise AdminError(408, str(exc)) from None


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    if not raw.strip():
        return {}
    try:
        body = jsonio.loads(raw)
    except jsonio.JSONError as exc:
        raise AdminError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


def query_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not WHOLE.fullmatch(value):  # ASCII digits only, and few enough to convert at once
        raise AdminError(400, f"{name} must be a whole number from 0 to {MAX_COUNT}")
    return int(value)


def count(body: dict[str, Any], key: str) -> int | None:
    """A whole-number field of an admin body, checked as a Decimal before any conversion (a huge exponent
    such as ``1e1000000`` would otherwise build a million-digit integer)."""
    if key not in body:
        return None
    value = body[key]
    if (
        not isinstance(value, Decimal)
        or not value.is_finite()
        or not 0 <= value <= MAX_COUNT
        or value != value.to_integral_value()
    ):
        raise AdminError(400, f"{key} must be a whole number from 0 to {MAX_COUNT}")
    return int(value)


def money(body: dict[str, Any], key: str) -> Decimal | None:
    """An amount field of an admin body: absent or null is None, anything else a non-negative amount."""
    if body.get(key) is None:
        return None
    try:
        amount = parse_amount(body[key])
    except ValueError as exc:
        raise AdminError(400, f"{key}: {exc}") from None
    if amount < 0:
        raise AdminError(400, f"{key} must not be negative")
    return amount


def dialect_of(request: web.Request) -> str:
    dialect = request.match_info["dialect"]
    if dialect not in registry.NAMES:
        raise AdminError(404, f"unknown dialect {dialect!r} (one of {', '.join(registry.NAMES)})")
    return dialect


def tenant_of(sim: Simulator, dialect: str, given: Any) -> str:
    tenants = sim.settings.tenants(dialect)
    if given is None:
        return tenants[0]
    if given not in tenants:
        raise AdminError(400, f"{given!r} is not a configured {dialect} tenant ({', '.join(tenants)})")
    return str(given)


async def find_player(request: web.Request, cursor: str | None, limit: int) -> tuple[Player, Page[Transaction]]:
    """The player the path names (under the ``agent`` / ``public_key`` tenant) and a page of its
    transactions, newest first; 404 if there is none."""
    sim = sim_of(request)
    dialect = dialect_of(request)
    tenant = tenant_of(sim, dialect, request.query.get("agent") or request.query.get("public_key"))
    found = await sim.store.read_player(dialect, tenant, request.match_info["player"], cursor, limit)
    if found is None:
        raise AdminError(404, f"no {dialect} player {request.match_info['player']!r} under {tenant!r}")
    return found
