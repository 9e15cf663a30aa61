"""The journal on a shared store: every replica publishes its entries to one capped Redis stream
(``XADD MAXLEN ~ journal_size``) and, before a control call reads the journal, pulls the entries the
others published into its own (so ``/_sim/journal``, ``verify``, the report and the dashboard see every
replica's requests). Entries from other replicas are kept in the order the store received them.

Publishing never blocks a request: entries wait in a bounded queue that one task writes in batches; if
Redis is slow or gone the oldest waiting entries are dropped (``dropped`` counts them) and the replica's
own journal still has them.

A stream entry has the fields ``o`` (the replica that published it), ``e`` (the entry's metadata and
operation, JSON), ``q`` (the decoded request, if any) and ``b`` (the answer's body), the last two JSON
with exact numbers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from dataclasses import fields
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from simulator import jsonio
from simulator.journal import Entry, Journal
from simulator.operations import Operation
from simulator.store.lane import Lane

log = logging.getLogger("simulator.store")

QUEUE = 10_000  # entries waiting to be published, at most
QUEUE_BYTES = 16 * 2**20  # and entries holding at most this many bytes: Redis away, a replica stays bounded
BATCH = 500
BODY_CAP = 16_384  # bytes of a request's decoded body published to the shared stream, at most
DECODE_CHUNK = 200  # entries decoded between two yields to the event loop
# the entry's fields published as they are (``op`` and ``body`` apart), and the operation's
SCALARS = (
    *("seq", "time", "dialect", "endpoint", "status", "code", "rule", "fault", "detail", "ms", "delay", "size"),
    *("received", "diagnostics"),
)
OP_TEXT = ("dialect", "operation", "endpoint", "agent", "player", "transaction", "scope", "round", "game", "currency")

Fields = tuple[str, bytes | None, bytes]  # a stream entry's: metadata, request (None: none decoded), body


def encode(entry: Entry) -> Fields:
    """A stream entry's fields: the entry's metadata (JSON), the decoded request and the answer's body
    (JSON with exact numbers, each in its own field: nothing is escaped into a string of a string)."""
    op = entry.op
    data: dict[str, Any] = {name: getattr(entry, name) for name in SCALARS}
    request = None
    if op is not None:
        data["op"] = {name: getattr(op, name) for name in OP_TEXT}
        data["op"].update(amount=None if op.amount is None else str(op.amount), mutating=op.mutating)
        data["op"].update(authenticated=op.authenticated, params=op.params)
        request = jsonio.dumpb(op.request)
        if len(request) > BODY_CAP:  # the shared stream keeps a capped body: Redis memory stays bounded
            prefix = request[:BODY_CAP].decode("utf-8", "ignore")
            request = jsonio.dumpb({"truncated": True, "bytes": len(request), "prefix": prefix})
    return _text(data), request, jsonio.dumpb(entry.body)


# what json.dumps would hand to ``default`` goes there with orjson too (it would write these natively)
_AS_STR = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _text(value: Any) -> str:
    """``json.dumps(value, default=str)``, written by orjson (a tenth of the time) where it can."""
    try:
        return orjson.dumps(value, default=str, option=_AS_STR).decode("utf-8")
    except (orjson.JSONEncodeError, TypeError):  # a key that is not a string, a lone surrogate
        return json.dumps(value, default=str)


def decode(item: dict[str, str], seq: int) -> Entry:
    """The entry of a stream item's fields (see :func:`encode`), numbered ``seq`` here. An item published
    by an earlier version (no ``b`` field: the request, the params and the body were strings inside ``e``)
    reads the same, so a store upgraded in place keeps its journal."""
    data = json.loads(item["e"])
    old = "b" not in item
    op = None
    if data.get("op") is not None:
        raw = data["op"]
        op = Operation(**{name: raw[name] for name in OP_TEXT})
        op.amount = None if raw["amount"] is None else jsonio.loads(raw["amount"])
        op.mutating, op.authenticated = raw["mutating"], raw["authenticated"]
        op.params = json.loads(raw["params"]) if old else raw["params"]
        op.request = jsonio.loads(raw["request"] if old else item["q"])
    known = {f.name for f in fields(Entry)}
    values = {k: v for k, v in data.items() if k in known and k not in ("op", "body")}
    values["seq"] = seq
    return Entry(op=op, body=jsonio.loads(data["body"] if old else item["b"]), **values)


def _pairs(origin: str, fields: Fields) -> list[str | bytes]:
    """The field-value pairs of a stream entry (``o``: the replica that published it)."""
    meta, request, body = fields
    if request is None:
        return ["o", origin, "e", meta, "b", body]
    return ["o", origin, "e", meta, "q", request, "b", body]


class JournalLink:
    def __init__(
        self, client: aioredis.Redis, key: str, journal: Journal, origin: str, lane: Lane | None = None
    ) -> None:
        self.redis, self.key, self.journal, self.origin = client, key, journal, origin
        self.lane = lane  # the store's batched connection (one server), else the pooled client
        self.cursor = "0-0"
        self.dropped = 0  # entries dropped unpublished (Redis slow or away)
        self.waiting_bytes = 0  # what the waiting entries hold (their ``size``)
        self.decoded_last = 0  # entries the last pull decoded
        # entries published but not yet sent: encoded by the writer, a batch at a time (the encoder's code
        # and data stay hot in the CPU's caches for a whole batch, instead of being reloaded per request)
        self._waiting: collections.deque[Entry] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    def publish(self, entry: Entry) -> None:
        self._waiting.append(entry)
        self.waiting_bytes += entry.size
        while len(self._waiting) > QUEUE or (self.waiting_bytes > QUEUE_BYTES and len(self._waiting) > 1):
            self.waiting_bytes -= self._waiting.popleft().size  # the oldest go first, counted
            self.dropped += 1
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer())

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except (RedisError, OSError):
                await asyncio.sleep(0.5)  # Redis away: keep (a bounded number of) entries for later
                self._wake.set()

    async def _flush(self) -> None:
        async with self._sending:
            await self._send()

    async def _send(self) -> None:
        while self._waiting:
            batch = [self._waiting[i] for i in range(min(BATCH, len(self._waiting)))]
            encoded = [_pairs(self.origin, fields) for fields in map(self._encode, batch) if fields is not None]
            if self.lane is not None:
                size = self.journal.size
                head = ("XADD", self.key, "MAXLEN", "~", size, "*")
                await self.lane.execute([(*head, *pairs) for pairs in encoded])
            else:
                pipe = self.redis.pipeline(transaction=False)
                for pairs in encoded:
                    pipe.xadd(
                        self.key,
                        dict(zip(pairs[::2], pairs[1::2], strict=True)),
                        maxlen=self.journal.size,
                        approximate=True,
                    )
                await pipe.execute()
            for entry in batch:  # those publish() dropped meanwhile are gone from the front already
                if self._waiting and self._waiting[0] is entry:
                    self.waiting_bytes -= self._waiting.popleft().size

    def _encode(self, entry: Entry) -> Fields | None:
        try:
            return encode(entry)
        except Exception:  # a bug: the entry stays in this replica's journal, and the others go on
            log.exception("journal entry %s could not be published", entry.seq)
            self.dropped += 1
            return None

    async def pull(self) -> None:
        """Append what the other replicas published since the last pull: only the newest ``journal.size``
        of them (the journal keeps no more), decoded a chunk at a time so requests are served meanwhile."""
        await self._flush()
        start = "-" if self.cursor == "0-0" else "(" + self.cursor
        newest = await self.redis.xrevrange(self.key, "+", start, count=self.journal.size)
        found = cast(list[tuple[str, dict[str, str]]], newest)[::-1]
        self.decoded_last = 0
        for n, (entry_id, item) in enumerate(found):
            self.cursor = entry_id
            if item["o"] != self.origin:
                self.journal.append(decode(item, self.journal.next_seq()))
                self.decoded_last += 1
            if n % DECODE_CHUNK == DECODE_CHUNK - 1:
                await asyncio.sleep(0)

    async def clear(self) -> None:
        """Forget every replica's entries (reset, ``DELETE /_sim/journal``)."""
        self._waiting.clear()
        self.waiting_bytes = 0
        await self.redis.xtrim(self.key, maxlen=0)
