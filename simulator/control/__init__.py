"""The ``/_sim`` control API (see the README's "Control API"): a sub-application with its own middleware,
so admin checks never touch dialect traffic.

Routes are tables of small handlers, one table per room: :mod:`simulator.control.routes` holds the core
calls (health, reset, players, transactions, journal, scenario, invariants), :mod:`simulator.control.tombstones`
the late-arrival tombstones; other rooms add their own table to :data:`TABLES` below. Every handler reaches
the simulator through :func:`simulator.control.http.sim_of`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from simulator.control import guard as checks
from simulator.control import openapi, report, routes, rules, tombstones, ui
from simulator.control.http import PREFIX, SIM, AdminError, reply
from simulator.service import Simulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: every room's route table; the catch-all "no such call" route comes last
TABLES: list[Sequence[web.AbstractRouteDef]] = [
    routes.ROUTES,
    tombstones.ROUTES,
    report.ROUTES,
    rules.ROUTES,
    ui.ROUTES,
    openapi.ROUTES,
]
#: rooms that keep state on the control app (set up before it starts)
SETUPS: list[Callable[[web.Application], None]] = [ui.setup]


def public(path: str) -> bool:
    """Calls that need no admin token: the health check, and the dashboard page and assets (no data)."""
    return path == f"{PREFIX}/health" or path == ui.PUBLIC_PREFIX or path.startswith(ui.PUBLIC_PREFIX + "/")


def setup(app: web.Application, sim: Simulator, token: str | None) -> None:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # Host, admin token (not for the page and its assets), Origin, Content-Type
            checks.check(request, sim.settings, token, token_required=not public(request.path))
            return await handler(request)
        except AdminError as exc:
            return reply(exc.body, exc.status)

    admin = web.Application(middlewares=[guard])
    admin[SIM] = sim
    admin[openapi.TOKEN] = bool(token)
    for room in SETUPS:
        room(admin)
    for table in TABLES:
        admin.router.add_routes(table)
    admin.router.add_route("*", "/{tail:.*}", routes.not_found)
    app.add_subapp(PREFIX, admin)
