"""Serving one process: bind, build the app on the chosen store, announce, run until told to stop.

The CLI's ``serve`` command and ``--workers`` (:mod:`simulator.server.workers`) both run this, as do the
in-process runner (:mod:`simulator.testing`) and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from simulator import __version__, service, store
from simulator.config import Settings
from simulator.scenarios.model import Scenario
from simulator.server import netserve
from simulator.server.app import create_app
from simulator.service import Simulator
from simulator.store import heap

log = logging.getLogger("simulator")


def banner(settings: Settings, scenario: Scenario, base: str, admin_token: str | None, workers: int = 1) -> str:
    lines = [f"Wallet simulator {__version__} listening on {base}", ""]
    x, f, a = settings.xpro, settings.fizzy, settings.ambslot
    for agent in list(x.agents.values())[:3]:
        lines.append(
            f"  XPro      {base}{x.prefix}/v2/auth  agent={agent.id} secret={agent.secret} "
            f"api_key={agent.api_key} currency={agent.currency}"
        )
    for brand in list(f.brands.values())[:3]:
        lines.append(
            f"  Fizzy     {base}{f.prefix}/wallet/balance  Public-Key={brand.public_key} "
            f"private key={brand.private_key} currency={brand.currency}"
        )
    for amb in list(a.agents.values())[:3]:
        lines.append(f"  AMBSlot   {base}{a.prefix}/balance  agent={amb.id} currency={amb.currency}")
    lines.append(f"  Admin     {base}/_sim/health" + ("  (Authorization: Bearer <admin token>)" if admin_token else ""))
    lines.append(f"  Dashboard {base}/_sim/ui")
    if scenario.sources:
        rules = plural(len(scenario.rules), "rule")
        lines.append(f"  Scenario  {scenario.name} ({', '.join(scenario.sources)}): {rules}")
    else:
        lines.append("  Scenario  none loaded (--scenario FILE or builtin:NAME)")
    where = store.parse(settings.store)
    processes = f"{workers} worker processes" if workers > 1 else "1 process"
    if where is None:
        lines.append(f"  Store     memory (this process only; state ends with it), {processes}")
    else:
        lines.append(f"  Store     {where.shown} (shared by every replica, kept over restarts), {processes}")
    return "\n".join(lines)


def announce(text: str, fmt: str, base: str) -> None:
    """The banner: on stdout as text, or (``--log-format json``) as log records, one per line, so that
    every line the server writes is JSON."""
    if fmt != "json":
        print(text, flush=True)
        return
    for index, line in enumerate(text.splitlines()):
        if line.strip():
            log.info(line.strip(), extra={"fields": {"url": base} if index == 0 else {}})


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def bind(host: str, port: int, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """A listening socket; ``reuse_port``: several processes listen on one port (``--workers``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    scenario: Scenario,
    *,
    admin_token: str | None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    keep: Callable[[Simulator], None] | None = None,
    worker: int | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``); requests in flight get ``shutdown_timeout`` to finish.
    ``ready`` is called with the base URL once listening; ``keep`` gets the Simulator (embedding, tests).
    ``worker``: one of ``--workers`` (shares the port, prints no banner). Raises StoreError when the store
    cannot be reached."""
    sim = await service.open_simulator(settings, scenario)
    if keep:
        keep(sim)
    app = create_app(sim, admin_token)
    try:
        await sim.open()
    except Exception:
        await sim.close()
        raise
    server = settings.server
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=server.shutdown_timeout,
        keepalive_timeout=server.keepalive_timeout,  # also bounds the wait for a new connection's headers
    )
    await runner.setup()
    sock = bind(server.host, server.port, reuse_port=worker is not None)
    netserve.quiet_exhaustion(asyncio.get_running_loop())
    site = netserve.LimitedSite(
        runner,
        sock,
        max_connections=netserve.connection_cap(server.max_connections),
        max_per_peer=server.max_connections_per_peer,
    )
    await site.start()
    heap.settle()  # start-up's objects are permanent: no collection walks them again
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if worker is None:  # the scenario the store holds: a replica joining a shared store runs that one
        announce(banner(settings, sim.scenario, base, admin_token), settings.server.log_format, base)
    if ready:
        ready(base)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: waiting up to %ss for requests in flight", settings.server.shutdown_timeout)
        await runner.cleanup()
        await sim.close()
        log.info("stopped", extra={"fields": {"url": base}})


def refuse(fmt: str | None, headline: str, problems: list[str], code: int = 2) -> int:
    """Why the server did not start: indented text lines, or one JSON log record with the problems."""
    if fmt == "json":
        log.error(headline, extra={"fields": {"problems": problems}})
    else:
        print(headline + (":" if problems else "") + "".join(f"\n  {p}" for p in problems), file=sys.stderr)
    return code
