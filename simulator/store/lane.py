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
import contextlib
import time
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int
Command = Sequence[Arg]

READ_CHUNK = 1 << 16


class _Call:
    """One caller's commands in flight: the replies come back in order, ``want`` of them."""

    __slots__ = ("future", "replies", "sent", "want")

    def __init__(self, future: asyncio.Future[list[Any]], want: int) -> None:
        self.future = future
        self.want = want
        self.replies: list[Any] = []
        self.sent = time.monotonic()


class Lane:
    """Commands of many callers on one connection (see the module docstring)."""

    def __init__(self, pool: aioredis.ConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._calls: collections.deque[_Call] = collections.deque()
        self._out: list[bytes] = []
        self._flush_at: asyncio.Handle | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._opening = asyncio.Lock()
        self._connection: Any = None

    async def call(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands`` (sent together, in order); an error reply comes back as a
        :class:`redis.exceptions.ResponseError` in its place, not raised."""
        try:
            return await self._once(commands)
        except ConnectionError:
            return await self._once(commands)  # once more, on a fresh connection

    async def _once(self, commands: Sequence[Command]) -> list[Any]:
        if self._writer is None:
            await self._open()
        # packed before the call is queued: an argument hiredis refuses raises here, and no reply can be
        # handed to the wrong caller
        packed = [hiredis.pack_command(cast(Any, tuple(command))) for command in commands]
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future(), len(commands))
        self._calls.append(call)
        self._out += packed
        if self._flush_at is None:
            self._flush_at = loop.call_soon(self._flush)
        if self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check)
        return await call.future

    async def _open(self) -> None:
        async with self._opening:
            if self._writer is not None:
                return
            connection = self.pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # redis-py's handshake: AUTH, SELECT, TLS as the URL says
            reader, writer = connection._reader, connection._writer
            if reader is None or writer is None:
                raise ConnectionError("the connection to Redis did not open")
            self._connection, self._writer = connection, writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader, writer))

    def _flush(self) -> None:
        self._flush_at = None
        out, self._out = self._out, []
        if self._writer is None:  # lost meanwhile: its callers were failed with it
            return
        try:
            self._writer.write(b"".join(out))
        except (OSError, RuntimeError) as exc:
            self._lost(ConnectionError(f"writing to Redis failed: {exc}"))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        calls = self._calls
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    call = calls[0]
                    call.replies.append(reply)
                    if len(call.replies) == call.want:
                        calls.popleft()
                        if not call.future.done():
                            call.future.set_result(call.replies)
        except asyncio.CancelledError:
            raise
        except (OSError, ConnectionError, hiredis.ProtocolError, IndexError) as exc:
            if writer is self._writer:
                self._lost(exc if isinstance(exc, ConnectionError) else ConnectionError(f"Redis: {exc}"))

    def _check(self) -> None:
        """A reply overdue by ``timeout``: the connection is given up (every waiting call fails)."""
        self._watch = None
        if not self._calls:
            return
        overdue = time.monotonic() - self._calls[0].sent
        if overdue >= self.timeout:
            self._lost(RedisTimeoutError(f"Redis did not answer within {self.timeout:g} s"))
        else:
            self._watch = asyncio.get_running_loop().call_later(self.timeout - overdue, self._check)

    def _lost(self, exc: Exception) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        connection, self._connection = self._connection, None
        if writer is not None:
            writer.transport.abort()
        if connection is not None:
            connection._close()  # redis-py's: forget the streams (no "unclosed" warning later)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        calls, self._calls = self._calls, collections.deque()
        self._out = []
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)

    async def close(self) -> None:
        task = self._reader_task
        self._lost(ConnectionError("the lane was closed"))
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
