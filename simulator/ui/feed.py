"""The dashboard's live feed: small summaries of journal entries to a browser in capped batches, as
server-sent events.

One journal subscriber (:class:`Pages`, present only while a page watches) turns each new entry into a
small summary (ids shortened; the request and the answer only when the entry is small) and hands it to
every watching page's :class:`Feed`, which keeps the newest summaries in a bounded buffer (older ones are
counted as dropped). :func:`stream` drains that buffer every ``UI_FEED_INTERVAL`` seconds into one
``batch`` event, so a simulator answering thousands of requests a second sends a page a few small
messages a second and the dialects never wait on a browser. The per-dialect counters come from the
journal's own tally, so a page connecting costs nothing in proportion to the journal.

A page that stops reading is bounded too: what waits to be sent to it never exceeds
``server.feed_page_bytes`` (its socket's send buffer is set to that size, and no batch is written while
that much is still waiting), and a page that has not drained for ``server.feed_stall_seconds`` is dropped,
freeing its slot for the next page.

TCP cannot tell a page that reads from one whose kernel still has room to buffer, so a page also proves
it reads: each batch names the page (``"page"``), and the dashboard acknowledges what it processed
(``POST /_sim/events/{page}/ack``, about once a second). When every slot is taken, a new page takes the
slot of the page that has gone longest without acknowledging, if that is longer than
``server.feed_stall_seconds``; a page that keeps acknowledging is never displaced.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import secrets
import socket
import time
from typing import Any

from aiohttp import web

from simulator import jsonio
from simulator.config import UI_FEED_BACKLOG, UI_FEED_BATCH, UI_FEED_INTERVAL, UI_FEED_PAGES
from simulator.journal import Entry, Journal

log = logging.getLogger("simulator.ui")

HEARTBEAT = 1.0  # seconds between batches when nothing happens (keeps the counters fresh)
RESET = b"event: reset\ndata: {}\n\n"  # the journal was cleared (a reset, by this page or another client)
SUMMARY_TEXT = 200  # characters of an id, a rule name or a code a summary shows
SUMMARY_DETAIL = 1000  # characters of a refusal's detail a summary shows
SUMMARY_WHOLE = 8192  # an entry estimated larger than this (bytes) is summarised without request and answer


def _short(value: Any, limit: int = SUMMARY_TEXT) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def summary(entry: Entry) -> dict[str, Any]:
    """What the dashboard shows of an entry: bounded in size whatever the request was. The request and the
    answer come along only for an entry estimated at most ``SUMMARY_WHOLE`` bytes; else a note says where
    the whole entry is (``GET /_sim/journal``)."""
    op = entry.op
    whole = entry.size <= SUMMARY_WHOLE
    omitted = f"(about {entry.size} bytes: too large for the live feed; GET /_sim/journal has the whole entry)"
    return {
        "seq": entry.seq,
        "time": dt.datetime.fromtimestamp(entry.time, dt.UTC).isoformat(timespec="milliseconds"),
        "dialect": entry.dialect,
        "endpoint": _short(entry.endpoint),
        "operation": entry.operation,
        "agent": _short(op.agent) if op else None,
        "player": _short(op.player) if op else None,
        "transaction": _short(op.transaction) if op else None,
        "round": _short(op.round) if op else None,
        "amount": op.amount if op else None,
        "request": (op.request if whole else omitted) if op else None,
        "response": {
            "status": entry.status,
            "body": entry.body if whole else omitted,
            "code": _short(entry.code),
            "fault": entry.fault,
        },
        "rule": _short(entry.rule),
        "detail": _short(entry.detail, SUMMARY_DETAIL),
        "ms": round(entry.ms, 3),
        "delay_ms": round(entry.delay * 1000, 3),
    }


class Feed:
    """One page's buffer of summaries not yet sent (the newest ``UI_FEED_BATCH``)."""

    def __init__(self, journal: Journal, transport: asyncio.Transport | None = None) -> None:
        self.journal = journal
        self.transport = transport
        self.id = secrets.token_urlsafe(12)  # named in each batch; the page acknowledges with it
        self.proven = time.monotonic()  # when the page connected or last acknowledged
        self.pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=UI_FEED_BATCH)
        self.dropped = 0
        self.backlog = [summary(e) for e in journal.newest(UI_FEED_BACKLOG)]

    def __call__(self, item: dict[str, Any]) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(item)

    def batch(self, items: list[dict[str, Any]], budget: int = 1 << 62) -> str:
        """One ``batch`` event of ``items``, at most about ``budget`` bytes: the newest items that fit are
        sent, the others counted as dropped."""
        encoded: list[bytes] = []
        used = 0
        for item in reversed(items):
            text = jsonio.dumpb(item)
            if used + len(text) > budget:
                self.dropped += 1
                continue
            used += len(text) + 1
            encoded.append(text)
        counts = {d: dict(zip(("requests", "errors", "faults"), c, strict=True)) for d, c in self.journal.tally.items()}
        tail = jsonio.dumps({"dropped": self.dropped, "counts": counts, "time": time.time(), "page": self.id})
        entries = b",".join(reversed(encoded)).decode("utf-8")
        return f'event: batch\ndata: {{"entries":[{entries}],{tail[1:]}\n\n'

    def drain(self, budget: int = 1 << 62) -> str:
        items = list(self.pending)
        self.pending.clear()
        text = self.batch(items, budget)
        self.dropped = 0
        return text


class Pages:
    """The feeds being served, so that their number stays bounded and shutdown ends them promptly. While
    at least one page watches, it is the journal subscriber that summarises each entry once for all."""

    def __init__(self) -> None:
        self.feeds: set[Feed] = set()
        self.closing = False

    @property
    def full(self) -> bool:
        return len(self.feeds) >= UI_FEED_PAGES

    def find(self, page: str) -> Feed | None:
        return next((f for f in self.feeds if secrets.compare_digest(f.id, page)), None)

    def make_room(self, stall_seconds: float) -> bool:
        """Whether a new page may watch: a free slot, or the slot of the page that has gone longest without
        acknowledging (if longer than ``stall_seconds``), which is disconnected."""
        if not self.full:
            return True
        idle = min(self.feeds, key=lambda f: f.proven, default=None)
        if idle is None or time.monotonic() - idle.proven < stall_seconds:
            return False
        log.info("a live-feed page that acknowledged nothing for %gs gave its slot to a new page", stall_seconds)
        if idle.transport is not None:
            idle.transport.abort()
        self.leave(idle)
        return not self.full

    def join(self, feed: Feed) -> None:
        if not self.feeds:
            feed.journal.subscribers.append(self.publish)
        self.feeds.add(feed)

    def leave(self, feed: Feed) -> None:
        self.feeds.discard(feed)
        if not self.feeds:
            with contextlib.suppress(ValueError):
                feed.journal.subscribers.remove(self.publish)

    def publish(self, entry: Entry) -> None:
        item = summary(entry)
        for feed in self.feeds:
            feed(item)

    async def close(self, app: web.Application) -> None:
        self.closing = True


def _bound_send_buffer(request: web.Request, size: int) -> None:
    """The kernel keeps at most about ``size`` bytes for a page that does not read (not the default
    megabytes), so a stalled page is noticed soon and holds little."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def stream(
    request: web.Request, journal: Journal, pages: Pages, *, page_bytes: int, stall_seconds: float
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    _bound_send_buffer(request, page_bytes)
    await response.prepare(request)
    transport = request.transport
    feed = Feed(journal, transport)
    pages.join(feed)
    try:
        async with asyncio.timeout(stall_seconds):
            await response.write(feed.batch(feed.backlog, page_bytes).encode())
        feed.backlog = []
        quiet_since = time.monotonic()
        stalled_since: float | None = None
        resets = journal.resets
        while not pages.closing:
            await asyncio.sleep(UI_FEED_INTERVAL)
            if transport is None or transport.is_closing():
                break
            if journal.resets != resets:  # another client reset or cleared: the page empties its list
                resets = journal.resets
                kept = [item for item in feed.pending if item["seq"] > journal.cleared_at]  # only what came after
                feed.pending.clear()
                feed.pending.extend(kept)
                async with asyncio.timeout(stall_seconds):
                    await response.write(RESET)
            now = time.monotonic()
            waiting = transport.get_write_buffer_size()
            if waiting:  # the socket's buffer is full: the page is not reading (fast enough)
                stalled_since = stalled_since or now
                if now - stalled_since >= stall_seconds:
                    raise TimeoutError
                if waiting >= page_bytes // 2:
                    continue  # nothing more for it until it reads; its feed keeps only the newest
            else:
                stalled_since = None
            if feed.pending or feed.dropped or now - quiet_since >= HEARTBEAT:
                async with asyncio.timeout(stall_seconds):
                    await response.write(feed.drain(page_bytes - waiting).encode())
                quiet_since = time.monotonic()
    except TimeoutError:
        log.info("a live-feed page that had not read its events for %gs was dropped", stall_seconds)
        if transport is not None:
            transport.abort()
    except ConnectionResetError:  # the page went away
        pass
    finally:
        pages.leave(feed)
    return response
