"""``GET /_sim/report``: the scorecard of the client's behaviour, as JSON or (``?format=junit``) JUnit XML.

Computed from the journal when asked, in a worker thread (a journal of millions of requests must not
stall the dialects); ``POST /_sim/reset`` and ``DELETE /_sim/journal`` clear what it judges.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from simulator import scorecard
from simulator.control.http import AdminError, reply, sim_of
from simulator.scorecard import junit

FORMATS = ("json", "junit")


async def report(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise AdminError(400, f"format must be one of {', '.join(FORMATS)}")
    sim = sim_of(request)
    entries = list(sim.journal)  # a snapshot: requests keep arriving while it is judged
    books = await sim.store.books()
    result = await asyncio.to_thread(
        scorecard.build, entries, books, sim.settings, now=sim.clock(), journal_size=sim.journal.size
    )
    if fmt == "junit":
        return web.Response(text=junit.render(result), content_type="application/xml", charset="utf-8")
    return reply(result)


ROUTES = [web.get("/report", report)]
