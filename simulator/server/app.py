"""The application factory: one ``Simulator``, the routes of every dialect, and the ``/_sim`` control API."""

from __future__ import annotations

from aiohttp import web

from simulator import control
from simulator.dialects.ambslot import Ambslot
from simulator.dialects.base import Dialect
from simulator.dialects.fizzy import Fizzy
from simulator.dialects.xpro import Xpro
from simulator.service import Simulator

SIM_KEY = web.AppKey("simulator", Simulator)
DIALECTS_KEY = web.AppKey("dialects", dict[str, Dialect])


def create_app(sim: Simulator, admin_token: str | None = None) -> web.Application:
    app = web.Application(client_max_size=sim.settings.server.max_body_bytes)
    app[SIM_KEY] = sim
    dialects: dict[str, Dialect] = {d.name: d for d in (Xpro(sim), Fizzy(sim), Ambslot(sim))}
    app[DIALECTS_KEY] = dialects
    for dialect in dialects.values():
        app.router.add_routes(dialect.routes())
    control.setup(app, sim, admin_token if admin_token is not None else sim.settings.server.admin_token)
    return app
