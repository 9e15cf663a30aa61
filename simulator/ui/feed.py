"""The dashboard's live feed: journal entries to a browser in capped batches, as server-sent events.

Each watching page owns a :class:`Feed`, a journal subscriber that does O(1) work per request: it bumps
per-dialect counters and keeps the newest entries in a bounded buffer (older ones are counted as dropped).
:func:`stream` drains that buffer every ``UI_FEED_INTERVAL`` seconds into one ``batch`` event, so a
simulator answering thousands of requests a second sends a page a few small messages a second and the
dialects never wait on a browser.
"""

from __future__ import annotations

import asyncio
import collections
import time

from aiohttp import web

from simulator import jsonio
from simulator.config import UI_FEED_BACKLOG, UI_FEED_BATCH, UI_FEED_INTERVAL, UI_FEED_PAGES
from simulator.journal import Entry, Journal

HEARTBEAT = 1.0  # seconds between batches when nothing happens (keeps the counters fresh)
RESET = b"event: reset\ndata: {}\n\n"  # the journal was cleared (a reset, by this page or another client)


def is_error(entry: Entry) -> bool:
    """A refusal or an injected error answer (a success has code 0, or none for Fizzy)."""
    return entry.fault is None and (entry.status >= 400 or entry.code not in (0, None))


class Feed:
    """One page's subscription to the journal."""

    def __init__(self, journal: Journal) -> None:
        self.pending: collections.deque[Entry] = collections.deque(maxlen=UI_FEED_BATCH)
        self.dropped = 0
        self.counts: dict[str, list[int]] = {}  # dialect -> [requests, errors, faults]
        backlog = list(journal)
        for entry in backlog:
            self.count(entry)
        self.backlog = backlog[-UI_FEED_BACKLOG:]

    def count(self, entry: Entry) -> None:
        counts = self.counts.setdefault(entry.dialect, [0, 0, 0])
        counts[0] += 1
        counts[1] += is_error(entry)
        counts[2] += entry.fault is not None

    def __call__(self, entry: Entry) -> None:
        self.count(entry)
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(entry)

    def batch(self, entries: list[Entry]) -> str:
        body = {
            "entries": [e.to_dict() for e in entries],
            "dropped": self.dropped,
            "counts": {d: dict(zip(("requests", "errors", "faults"), c, strict=True)) for d, c in self.counts.items()},
            "time": time.time(),
        }
        return f"event: batch\ndata: {jsonio.dumps(body)}\n\n"

    def drain(self) -> str:
        entries = list(self.pending)
        self.pending.clear()
        text = self.batch(entries)
        self.dropped = 0
        return text


class Pages:
    """The feeds being served, so that their number stays bounded and shutdown ends them promptly."""

    def __init__(self) -> None:
        self.feeds: set[Feed] = set()
        self.closing = False

    @property
    def full(self) -> bool:
        return len(self.feeds) >= UI_FEED_PAGES

    async def close(self, app: web.Application) -> None:
        self.closing = True


async def stream(request: web.Request, journal: Journal, pages: Pages) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    feed = Feed(journal)
    pages.feeds.add(feed)
    journal.subscribers.append(feed)
    try:
        await response.write(feed.batch(feed.backlog).encode())
        feed.backlog = []
        quiet_since = time.monotonic()
        resets = journal.resets
        while not pages.closing:
            await asyncio.sleep(UI_FEED_INTERVAL)
            if journal.resets != resets:  # another client reset or cleared: the page empties its list
                resets = journal.resets
                kept = [e for e in feed.pending if e.seq > journal.cleared_at]  # only what came after
                feed.pending.clear()
                feed.pending.extend(kept)
                await response.write(RESET)
            if feed.pending or feed.dropped or time.monotonic() - quiet_since >= HEARTBEAT:
                await response.write(feed.drain().encode())
                quiet_since = time.monotonic()
    except ConnectionResetError:  # the page went away
        pass
    finally:
        journal.subscribers.remove(feed)
        pages.feeds.discard(feed)
    return response
