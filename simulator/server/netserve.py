"""What keeps the server available when clients misbehave: a connection cap, time limits, quiet logs.

- **Idle and header time** (``server.keepalive_timeout``): aiohttp closes a connection that has no complete
  request within that time of opening it or of the previous answer, partial headers included.
- **Body time** (``server.request_timeout``): :func:`read_body` bounds reading a request's body; a stalled
  body is answered as a bad request and the connection closed.
- **Connections** (``server.max_connections``, and never more than the process's file limit allows):
  :class:`LimitedSite` answers a connection beyond the cap ``503`` and closes it at once, so a flood of
  half-open connections cannot exhaust file descriptors and stop the service.
- **Per-peer share** (``server.max_connections_per_peer``, a quarter of ``max_connections`` by default): one
  client address holding more connections gets ``503`` with ``Retry-After`` for the extra ones, so it
  cannot take every slot and lock other clients out.
- **Resource exhaustion** (``EMFILE`` on accept and the like) is logged once per :data:`LOG_INTERVAL`
  with a count, instead of a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("simulator.server")

LOG_INTERVAL = 60.0  # seconds between two log lines about the same exhausted resource
FD_RESERVE = 64  # file descriptors kept for everything but client connections (logs, files, the listener)
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _busy(text: bytes) -> bytes:
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nRetry-After: 1\r\n"
        + f"Content-Length: {len(text)}\r\n\r\n".encode()
        + text
    )


BUSY = _busy(b"too many open connections; retry in a moment\n")
PEER_BUSY = _busy(b"too many open connections from your address (server.max_connections_per_peer); retry in a moment\n")


class BodyTimeout(Exception):
    """The request's body did not arrive within ``server.request_timeout``."""


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The request's body, or BodyTimeout if it has not all arrived within ``seconds``."""
    if request.content.is_eof():  # all of it arrived with the headers (the usual case): no timer needed
        return await request.read()
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {seconds:g}s (server.request_timeout)") from None


def connection_cap(configured: int) -> int:
    """``configured``, lowered so that client connections alone cannot hit the file-descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_RESERVE))


class _Busy(asyncio.Protocol):
    """The protocol of a connection over the cap: one 503, then closed."""

    def __init__(self, answer: bytes = BUSY) -> None:
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.answer)
        transport.close()


class _PeerGate(asyncio.Protocol):
    """A connection under the overall cap: counted against its peer's share once its address is known (in
    ``connection_made``), then served by aiohttp's handler (every event passed on), or answered 503 if the
    peer is over its share. Freed from the share when the connection is lost."""

    def __init__(self, site: LimitedSite, make: Callable[[], asyncio.Protocol]) -> None:
        self.site = site
        self.make = make
        self.handler: asyncio.Protocol | None = None
        self.peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        site = self.site
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        held = site.peers.get(peer, 0)
        if held >= site.max_per_peer:
            site.refused += 1
            throttled.report(
                "peer", f"{peer or 'a client'} holds {held} connections (server.max_connections_per_peer): 503"
            )
            transport.write(PEER_BUSY)
            transport.close()
            return
        site.peers[peer] = held + 1
        self.peer = peer
        self.handler = self.make()
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            left = self.site.peers.get(self.peer, 1) - 1
            if left > 0:
                self.site.peers[self.peer] = left
            else:
                self.site.peers.pop(self.peer, None)
            self.peer = None
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        assert self.handler is not None
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()


class LimitedSite(web.SockSite):
    """A ``SockSite`` whose connections beyond ``max_connections``, or beyond ``max_per_peer`` from one client
    address, are answered 503 and closed."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: Any,
        *,
        max_connections: int,
        max_per_peer: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(runner, sock, **options)
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer or max_connections
        self.peers: dict[str, int] = {}  # client address -> connections it holds
        self.refused = 0

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does; SockSite.start would serve unlimited
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._factory(server), sock=self._sock, backlog=self._backlog
        )

    def _factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.max_connections:
                self.refused += 1
                throttled.report("connections", f"connection cap ({self.max_connections}) reached: answering 503")
                return _Busy()
            return _PeerGate(self, server)

        return protocol


class Throttled:
    """One log line per reason and interval, saying how many events it stands for."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def report(self, reason: str, message: str) -> None:
        self._count[reason] = self._count.get(reason, 0) + 1
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval:
            return
        count = self._count.pop(reason)
        self._last[reason] = now
        suffix = f" ({count} times in the last {self.interval:.0f}s)" if last is not None and count > 1 else ""
        log.warning("%s%s", message, suffix)


throttled = Throttled()


def exhaustion(context: dict[str, Any]) -> str | None:
    """The name of the exhausted resource an event-loop error context reports, if it is one."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in EXHAUSTED:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return None


def quiet_exhaustion(loop: asyncio.AbstractEventLoop) -> None:
    """Log resource exhaustion reported by the loop (accept() failing with EMFILE, ...) once per interval,
    without a traceback; everything else goes to the loop's previous handler."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        name = exhaustion(context)
        if name is None:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        throttled.report(name, f"{context.get('message', 'out of a system resource')}: {name}; new connections wait")

    loop.set_exception_handler(handler)
