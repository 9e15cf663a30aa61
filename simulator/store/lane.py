"""One connection to a Redis server that many requests share, their commands batched (auto-pipelining).

A replica on the shared store makes two round trips a request (read-ahead, commit), and under load dozens
of requests are in flight at once. Through a connection pool each round trip is a pipeline of its own: a
connection taken and given back, each argument encoded in Python, a reply read (and a task woken) per
command. That cost, not Redis, bounded a replica (docs/performance.md).

A :class:`Lane` instead writes every command issued in the same event-loop iteration in one write, packed
by hiredis, and reads the replies with one hiredis reader, handing each caller its own in order (Redis
answers a connection's commands in the order they came). The connection itself is opened by redis-py
(:meth:`redis.asyncio.ConnectionPool.make_connection`), so every option of the store URL (password, user,
database, TLS) holds here exactly as for the pooled client.

Failures: a connection that fails (or is closed by the server) fails every caller waiting on it with
:class:`redis.exceptions.ConnectionError`; the next call opens a new one. A call that failed that way is
sent once more on a fresh connection, as redis-py's ``Retry`` does for a pooled client (every script here
is a compare-and-set, so a second send never applies twice). A reply that has not come within
``timeout`` closes the connection (the waiting calls fail with :class:`redis.exceptions.TimeoutError`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int
Command = Sequence[Arg]


class _Call:
    """One caller's commands in flight: the replies come back in order, ``want`` of them."""

    __slots__ = ("future", "replies", "sent", "want")

    def __init__(self, future: asyncio.Future[list[Any]], want: int) -> None:
        self.future = future
        self.want = want
        self.replies: list[Any] = []
        self.sent = 0.0  # when its commands were written (a reply is overdue from then, not from the call)


class _Replies(asyncio.Protocol):
    """Reads one connection's replies and hands them to the lane (the connection's protocol once redis-py
    has opened it: the bytes go straight to hiredis, with no stream or task in between)."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.writer: asyncio.StreamWriter | None = None

    def data_received(self, data: bytes) -> None:
        calls = self.lane._calls
        try:
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                call = calls[0]
                call.replies.append(reply)
                if len(call.replies) == call.want:
                    calls.popleft()
                    if not call.future.done():
                        call.future.set_result(call.replies)
        except (hiredis.ProtocolError, IndexError) as exc:  # not Redis, or a reply nobody asked for
            self.lane._lost(self, ConnectionError(f"Redis answered what it cannot have: {exc}"))

    def eof_received(self) -> bool:
        self.lane._lost(self, ConnectionError("Redis closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane._lost(self, ConnectionError(f"the connection to Redis was lost: {exc or 'closed'}"))


class Lane:
    """Commands of many callers on one connection (see the module docstring)."""

    def __init__(self, pool: aioredis.ConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self._replies: _Replies | None = None  # the open connection's
        self._calls: collections.deque[_Call] = collections.deque()
        self._out: list[bytes] = []
        self._unsent: list[_Call] = []  # the calls whose commands are in ``_out``
        self._flush_at: asyncio.Handle | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._opening = asyncio.Lock()

    async def call(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands`` (sent together, in order); an error reply comes back as a
        :class:`redis.exceptions.ResponseError` in its place, not raised."""
        try:
            if self._replies is None:
                await self._open()
            return await self._queue(commands)
        except ConnectionError:
            await self._open()
            return await self._queue(commands)  # once more, on a fresh connection

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands``; an error reply raises (the first one), as a redis-py pipeline's does."""
        replies = await self.call(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _queue(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Queue ``commands`` for the next write (at the end of this turn of the event loop): the future
        of their replies. Not a coroutine: a request makes two calls, and each coroutine frame costs."""
        # packed before the call is queued: an argument hiredis refuses raises here, and no reply can be
        # handed to the wrong caller
        packed = [hiredis.pack_command(cast(Any, c if c.__class__ is tuple else tuple(c))) for c in commands]
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future(), len(commands))
        self._calls.append(call)
        self._unsent.append(call)
        self._out += packed
        if self._flush_at is None:
            self._flush_at = loop.call_soon(self._flush)
        if self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check)
        return call.future

    async def _open(self) -> None:
        async with self._opening:
            if self._replies is not None:
                return
            connection = self.pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # redis-py's handshake: AUTH, SELECT, TLS as the URL says
            writer = connection._writer
            if writer is None:
                raise ConnectionError("the connection to Redis did not open")
            connection._reader = connection._writer = None  # the connection is the lane's from here on
            replies = _Replies(self)
            replies.writer = writer  # kept: a stream writer that is collected closes its transport
            replies.transport = cast(asyncio.Transport, writer.transport)
            replies.transport.set_protocol(replies)
            self._replies = replies

    def _flush(self) -> None:
        self._flush_at = None
        out, self._out = self._out, []
        now = time.monotonic()
        for call in self._unsent:
            call.sent = now
        self._unsent = []
        replies = self._replies
        if replies is None or replies.transport is None:  # lost meanwhile: its callers were failed with it
            return
        try:
            replies.transport.write(b"".join(out))
        except (OSError, RuntimeError) as exc:
            self._lost(replies, ConnectionError(f"writing to Redis failed: {exc}"))

    def _check(self) -> None:
        """A reply overdue by ``timeout``: the connection is given up (every waiting call fails)."""
        self._watch = None
        if not self._calls:
            return
        # from the write: a loop kept busy longer than the timeout before it wrote (a stall here, not in
        # Redis) does not count against Redis
        sent = self._calls[0].sent or time.monotonic()
        overdue = time.monotonic() - sent
        if overdue >= self.timeout:
            if self._replies is not None:
                self._lost(self._replies, RedisTimeoutError(f"Redis did not answer within {self.timeout:g} s"))
        else:
            self._watch = asyncio.get_running_loop().call_later(self.timeout - overdue, self._check)

    def _lost(self, replies: _Replies, exc: Exception) -> None:
        """The connection ``replies`` reads is given up: every call waiting on it fails with ``exc``."""
        if replies is not self._replies:
            return  # an earlier connection's late news
        self._replies = None
        transport, replies.transport = replies.transport, None
        if transport is not None:
            transport.abort()
        calls, self._calls = self._calls, collections.deque()
        self._out, self._unsent = [], []
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)

    async def close(self) -> None:
        if self._replies is not None:
            self._lost(self._replies, ConnectionError("the lane was closed"))
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
