"""The ``/_sim`` control API (see the README's "Control API"): a sub-application whose every handler is
wrapped in :func:`guarded` when the tables are assembled. Not a middleware: a middleware on any sub-app makes
aiohttp wrap *every* request of the whole server (the dialects' too) in middleware machinery.

Routes are tables of small handlers, one table per room: :mod:`simulator.control.routes` holds the core
calls (health, reset, players, transactions, journal, scenario, invariants), :mod:`simulator.control.tombstones`
the late-arrival tombstones; other rooms add their own table to :data:`TABLES` below. Every handler reaches
the simulator through :func:`simulator.control.http.sim_of`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from simulator.control import guard as checks
from simulator.control import openapi, report, routes, rules, tombstones, ui
from simulator.control.http import PREFIX, SIM, AdminError, reply
from simulator.errors import LedgerFull
from simulator.service import Simulator
from simulator.store import BadCursor, StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEALTH = f"{PREFIX}/health"

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


def guarded(handler: Handler, sim: Simulator, token: str | None) -> Handler:
    """``handler`` behind the control API's checks (Host, admin token but for public calls, Origin,
    Content-Type: :func:`simulator.control.guard.check`), with AdminError answered as JSON, a full
    ledger (``server.max_players``) as 507 Insufficient Storage, a malformed paging cursor as 400, and a
    shared store that does not answer as 503. Every call but the health check first brings the state it reads up to date
    (:meth:`Simulator.refresh`); changes are domain commands, carried out by the store."""

    @functools.wraps(handler)  # its name and docstring document the route (openapi.py)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            checks.check(request, sim.settings, token, token_required=not public(request.path))
            if request.path != HEALTH:
                await sim.refresh()
            return await handler(request)
        except AdminError as exc:
            return reply(exc.body, exc.status)
        except BadCursor as exc:  # a listing's cursor the store never gave
            return reply({"error": str(exc)}, 400)
        except LedgerFull as exc:  # raised inside the command's atomic block: nothing was changed
            return reply({"error": str(exc)}, 507)
        except StoreUnavailable as exc:  # the shared store did not answer: nothing was changed
            return reply({"error": str(exc), "store": sim.store.shown}, 503)

    return guard


def assets(directory: Path) -> Handler:
    """A handler for the files under ``directory`` (``{name}`` in the route): a lookup in the set found at
    start-up, so no request path ever reaches the file system."""
    files = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}

    async def asset(request: web.Request) -> web.StreamResponse:
        """A file of the dashboard: its HTML, CSS and JavaScript."""
        name = request.match_info["filename"]
        found = files.get(name)
        if found is None:
            raise AdminError(404, f"no asset {name!r}")
        return web.FileResponse(found)

    return asset


def setup(app: web.Application, sim: Simulator, token: str | None) -> web.Application:
    admin = web.Application()
    admin[SIM] = sim
    admin[openapi.TOKEN] = bool(token)
    for room in SETUPS:
        room(admin)
    for table in TABLES:
        for route in table:
            if isinstance(route, web.StaticDef):
                admin.router.add_get(route.prefix + "/{filename:.+}", guarded(assets(Path(route.path)), sim, token))
            else:
                assert isinstance(route, web.RouteDef), route
                handler = guarded(route.handler, sim, token)
                web.RouteDef(route.method, route.path, handler, route.kwargs).register(admin.router)
    admin.router.add_route("*", "/{tail:.*}", guarded(routes.not_found, sim, token))
    app.add_subapp(PREFIX, admin)
    return admin
