"""What keeps the server available when clients misbehave: a connection cap, time limits, quiet logs.

- **Idle and header time** (``server.keepalive_timeout``): aiohttp closes a connection that has no complete
  request within that time of opening it or of the previous answer, partial headers included.
- **Body time** (``server.request_timeout``): :func:`read_body` bounds reading a request's body; a stalled
  body is answered as a bad request and the connection closed.
- **Connections** (``server.max_connections``, and never more than the process's file limit allows):
  :class:`LimitedSite` answers a connection beyond the cap ``503`` and closes it at once, so a flood of
  half-open connections cannot exhaust file descriptors and stop the service.
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
_BUSY_TEXT = b"too many open connections; retry in a moment\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nRetry-After: 1\r\n"
    + f"Content-Length: {len(_BUSY_TEXT)}\r\n\r\n".encode()
    + _BUSY_TEXT
)


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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY)
        transport.close()


class LimitedSite(web.SockSite):
    """A ``SockSite`` whose connections beyond ``max_connections`` are answered 503 and closed."""

    def __init__(self, runner: web.BaseRunner, sock: Any, *, max_connections: int, **options: Any) -> None:
        super().__init__(runner, sock, **options)
        self.max_connections = max_connections
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
            return server()

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
