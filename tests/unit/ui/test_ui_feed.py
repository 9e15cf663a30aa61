"""The dashboard's server side: the capped live feed, its routes, and what needs the admin token."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator import jsonio
from simulator.config import UI_FEED_BATCH
from simulator.journal import Entry, Journal
from simulator.ui import feed
from simulator.ui.feed import Feed, Pages
from tests.conftest import Harness, Start


def entry(seq: int, dialect: str = "ambslot", code: Any = 0, status: int = 200, fault: str | None = None) -> Entry:
    return Entry(seq, 0.0, dialect, "/bet", None, status, {}, code, None, fault, None, 0.1)


def batch_of(text: str) -> dict[str, Any]:
    event, data = text.rstrip("\n").split("\n")
    assert event == "event: batch" and data.startswith("data: ")
    parsed: dict[str, Any] = jsonio.loads(data[len("data: ") :])
    return parsed


def test_a_feed_keeps_the_newest_entries_and_counts_what_it_drops() -> None:
    journal = Journal(10_000)
    page = Feed(journal)
    Pages().join(page)
    for seq in range(1, UI_FEED_BATCH + 301):
        journal.append(entry(seq))
    batch = batch_of(page.drain())
    assert len(batch["entries"]) == UI_FEED_BATCH
    assert batch["entries"][0]["seq"] == 301 and batch["entries"][-1]["seq"] == UI_FEED_BATCH + 300
    assert batch["dropped"] == 300
    assert batch["counts"] == {"ambslot": {"requests": UI_FEED_BATCH + 300, "errors": 0, "faults": 0}}
    again = batch_of(page.drain())
    assert again["entries"] == [] and again["dropped"] == 0


def test_counts_start_from_the_journal_and_tell_errors_from_faults() -> None:
    journal = Journal(100)
    journal.append(entry(1, "xpro", code=2))
    journal.append(entry(2, "fizzy", code="ERROR_TRANSACTION_INSUFFICIENT_FUNDS", status=400))
    journal.append(entry(3, "fizzy", code=None))
    page = Feed(journal)
    assert [e["seq"] for e in page.backlog] == [1, 2, 3]
    journal.append(entry(4, "xpro", code=None, status=0, fault="drop"))
    journal.append(entry(5, "xpro", code=0))
    assert batch_of(page.drain())["counts"] == {
        "xpro": {"requests": 3, "errors": 1, "faults": 1},
        "fizzy": {"requests": 2, "errors": 1, "faults": 0},
    }


async def read_batch(stream: Any) -> dict[str, Any]:
    text = ""
    while not text.endswith("\n\n"):
        line = await asyncio.wait_for(stream.content.readline(), 10)
        assert line, "the feed ended"
        text += line.decode()
    return batch_of(text)


async def test_the_feed_streams_new_requests_and_unsubscribes_when_the_page_goes(h: Harness) -> None:
    await h.amb.balance("member001")
    async with h.http.get(h.url + "/_sim/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await read_batch(stream)
        assert [e["operation"] for e in first["entries"]] == ["balance"]
        assert len(h.sim.journal.subscribers) == 1
        await h.amb.bet("member001", "R1", 1)
        batch = await read_batch(stream)
        while not batch["entries"]:  # heartbeats carry no entries
            batch = await read_batch(stream)
        assert [(e["operation"], e["response"]["code"]) for e in batch["entries"]] == [("bet", 0)]
        assert batch["counts"]["ambslot"]["requests"] == 2
    for _ in range(500):  # the server notices at its next write (a heartbeat at most a second away)
        if not h.sim.journal.subscribers:
            break
        await asyncio.sleep(0.01)
    assert h.sim.journal.subscribers == []


async def test_the_number_of_watching_pages_is_bounded(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "UI_FEED_PAGES", 0)
    status, body = await h.admin("GET", "/_sim/events")
    assert status == 503 and "pages can watch" in body["error"]


async def test_the_page_loads_without_the_token_and_its_data_needs_it(start: Start) -> None:
    h = await start(admin_token="tok")
    async with h.http.get(h.url + "/_sim/ui") as page:
        assert page.status == 200 and "<title>Wallet simulator</title>" in await page.text()
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    for asset in ("app.js", "app.css"):
        async with h.http.get(h.url + "/_sim/ui/static/" + asset) as response:
            assert response.status == 200
    assert await h.admin("GET", "/_sim/ui/features") == (200, {"report": True})
    assert (await h.admin("GET", "/_sim/events"))[0] == 401
    assert (await h.admin("POST", "/_sim/scenario/validate", text="name: x\n"))[0] == 401
    assert (await h.admin("GET", "/_sim/rules"))[0] == 401
    async with h.http.get(h.url + "/_sim/ui/static/../../_sim/players") as response:
        assert response.status in (401, 403, 404)


async def test_validate_checks_a_scenario_without_loading_it(h: Harness) -> None:
    status, body = await h.admin("POST", "/_sim/scenario/validate", text="name: v\nrules:\n  - match: {nth: 0}\n")
    assert status == 200 and body["ok"] is False
    assert body["problems"][0].startswith("(editor):3: rules[0].match.nth:")
    status, body = await h.admin("POST", "/_sim/scenario/validate", text="name: v\nrules: []\n")
    assert (status, body) == (200, {"ok": True, "name": "v", "rules": 0, "players": 0})
    assert h.sim.scenario.name == "(none)"
