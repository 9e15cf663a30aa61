"""The dashboard's routes: the page (``GET /_sim/ui``), its assets (``/_sim/ui/static/...``) and the live
feed (``GET /_sim/events``, server-sent events). The page and its assets hold no data and load without the
admin token; the page then calls the control API like any client, token included."""

from __future__ import annotations

import time

from aiohttp import web

from simulator.config import UI_FEED_PAGES
from simulator.control.http import PREFIX, AdminError, reply, sim_of
from simulator.errors import SourceError
from simulator.scenarios import loader
from simulator.ui import STATIC
from simulator.ui.feed import Pages, stream

PAGES = web.AppKey("ui_pages", Pages)
PUBLIC_PREFIX = f"{PREFIX}/ui"

# The page runs only its own scripts and talks only to this server; no other site may frame it.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def setup(admin: web.Application) -> None:
    pages = Pages()
    admin[PAGES] = pages
    admin.on_shutdown.append(pages.close)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=HEADERS)


async def features(request: web.Request) -> web.Response:
    """What the page may show: the scorecard panel only when a ``/_sim/report`` route is installed."""
    paths = {
        info.get("path") or info.get("formatter") for info in (r.get_info() for r in request.app.router.resources())
    }
    return reply({"report": f"{PREFIX}/report" in paths})


async def validate(request: web.Request) -> web.Response:
    """Check a scenario without loading it: ``{"ok": true, name, rules, players}`` or ``{"ok": false, problems}``."""
    try:
        scenario = loader.parse_body(await request.text(), "(editor)", sim_of(request).settings)
    except SourceError as exc:
        return reply({"ok": False, "problems": exc.problems})
    answer = {"ok": True, "name": scenario.name, "rules": len(scenario.rules), "players": len(scenario.players)}
    return reply({**answer, "warnings": scenario.warnings} if scenario.warnings else answer)


async def events(request: web.Request) -> web.StreamResponse:
    pages = request.config_dict[PAGES]
    sim = sim_of(request)
    server = sim.settings.server
    if not pages.make_room(server.feed_stall_seconds):
        raise AdminError(503, f"at most {UI_FEED_PAGES} pages can watch the live feed at once")
    return await stream(
        request, sim.journal, pages, page_bytes=server.feed_page_bytes, stall_seconds=server.feed_stall_seconds
    )


async def ack(request: web.Request) -> web.Response:
    """A watching page says it read its events (it keeps its slot when every slot is taken)."""
    feed = request.config_dict[PAGES].find(request.match_info["page"])
    if feed is None:
        raise AdminError(404, "no live-feed page with that id (it was disconnected): connect again")
    feed.proven = time.monotonic()
    return reply({"ok": True})


ROUTES: list[web.AbstractRouteDef] = [
    web.get("/ui", page),
    web.get("/ui/", page),
    web.static("/ui/static", STATIC),
    web.get("/ui/features", features),
    web.post("/scenario/validate", validate),
    web.get("/events", events),
    web.post("/events/{page}/ack", ack),
]
