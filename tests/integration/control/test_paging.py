"""Cursor paging of the control API's listings (players, transactions, a player's transactions, tombstones),
through HTTP: ``limit`` and ``cursor`` in, the body as it always was, the next page's cursor in
``X-Next-Cursor`` and ``Link: <...>; rel="next"`` (neither on the last page)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from simulator import jsonio
from simulator.testing import Control
from tests.conftest import Clock, Harness, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis

SCENARIO = """\
name: paging
players:
  - {dialect: xpro, username: player001, balance: 100}
  - {dialect: fizzy, playerId: p-1, balance: 50}
  - {dialect: ambslot, username: member001, balance: 10}
"""
LINK = re.compile(r'<([^>]+)>; rel="next"')


@pytest.fixture
async def ph(start: Start) -> Harness:
    return await start(scenario=SCENARIO)


async def get(h: Harness, path: str) -> tuple[int, Any, dict[str, str]]:
    async with h.http.get(h.url + path) as response:
        return response.status, jsonio.loads(await response.read()), dict(response.headers)


async def walk(h: Harness, path: str, limit: int, items: str | None = None) -> list[list[Any]]:
    """Every page of a listing, following X-Next-Cursor (and checking Link agrees with it)."""
    pages: list[list[Any]] = []
    sep = "&" if "?" in path else "?"
    url = f"{path}{sep}limit={limit}"
    for _ in range(1000):  # bounded: the listings here hold far fewer pages
        status, body, headers = await get(h, url)
        assert status == 200, body
        page = body[items] if items else body
        assert len(page) <= limit
        pages.append(page)
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in headers
            return pages
        assert page, "a page with a next page is not empty"
        link = LINK.fullmatch(headers["Link"])
        assert link is not None and f"limit={limit}" in link[1] and "cursor=" in link[1]
        url = link[1]  # the Link is the same call with the cursor (path and filters kept)
        assert url.startswith("/_sim/")
    raise AssertionError("the listing never ended")


async def adjust(h: Harness, dialect: str, player: str, balances: list[int]) -> None:
    for balance in balances:  # each change of balance is an ``adjust`` transaction
        status, body = await h.admin("PUT", f"/_sim/players/{dialect}/{player}", {"balance": balance})
        assert status in (200, 201), body


async def test_players_walk_every_page_once(ph: Harness) -> None:
    for n in range(8):
        await adjust(ph, "fizzy", f"fz-{n}", [n])
    _, everyone, headers = await get(ph, "/_sim/players")
    assert len(everyone) == 11 and "X-Next-Cursor" not in headers
    pages = await walk(ph, "/_sim/players", 3)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [p for page in pages for p in page] == everyone  # each once, in the unpaged order
    fizzy = await walk(ph, "/_sim/players?dialect=fizzy&q=FZ", 4)
    assert [len(p) for p in fizzy] == [4, 4]  # exactly two full pages: no empty third one
    assert [p["player"] for page in fizzy for p in page] == [f"fz-{n}" for n in range(8)]


async def test_transactions_walk_newest_first_and_new_ones_do_not_shift_pages(ph: Harness) -> None:
    await adjust(ph, "fizzy", "p-1", [51, 52, 53, 54, 55])
    await adjust(ph, "xpro", "player001", [101, 102, 103, 104])
    _, everything, _ = await get(ph, "/_sim/transactions")
    assert len(everything) == 9
    pages = await walk(ph, "/_sim/transactions", 4)
    assert [len(p) for p in pages] == [4, 4, 1]
    walked = [t for page in pages for t in page]
    assert walked == everything
    for dialect in ("fizzy", "xpro"):  # seq numbers count per tenant on the shared store, per ledger in memory
        seqs = [t["seq"] for t in walked if t["dialect"] == dialect]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)  # newest first, each once
    times = [t["time"] for t in walked]
    assert times == sorted(times, reverse=True)
    # filters and the old ``limit`` still work, and a page's cursor is where the next one continues
    fizzy = await walk(ph, "/_sim/transactions?dialect=fizzy&player=p-1&status=applied", 2)
    assert [t["seq"] for page in fizzy for t in page] == [t["seq"] for t in everything if t["dialect"] == "fizzy"]
    status, first, headers = await get(ph, "/_sim/transactions?limit=4")
    assert status == 200 and first == everything[:4]
    await adjust(ph, "fizzy", "p-1", [60, 61])  # newer transactions arrive while a client pages
    status, second, _ = await get(ph, f"/_sim/transactions?limit=4&cursor={headers['X-Next-Cursor']}")
    assert status == 200 and second == everything[4:8]


async def test_a_players_transactions_page_by_cursor(ph: Harness) -> None:
    await adjust(ph, "fizzy", "p-1", [51, 52, 53, 54, 55])
    status, whole, headers = await get(ph, "/_sim/players/fizzy/p-1")
    assert status == 200 and len(whole["transactions"]) == 5 and "X-Next-Cursor" not in headers
    pages = []
    url = "/_sim/players/fizzy/p-1?limit=2"
    while True:
        status, body, headers = await get(ph, url)
        assert status == 200 and {k: v for k, v in body.items() if k != "transactions"} == {
            k: v for k, v in whole.items() if k != "transactions"
        }
        pages.append(body["transactions"])
        if "X-Next-Cursor" not in headers:
            break
        url = LINK.fullmatch(headers["Link"])[1]  # type: ignore[index]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t for page in pages for t in page] == whole["transactions"]
    assert [t["balance_after"] for t in whole["transactions"]] == [55, 54, 53, 52, 51]  # newest first


async def test_a_transaction_stamped_before_one_booked_ahead_of_it_is_on_one_page(start: Start) -> None:
    """Two replicas stamp their transactions, then book them: one stamped earlier can be booked later.
    Walking the pages gives every transaction exactly once, each tenant's newest booked first, whatever
    the times say (a listing that ordered a tenant by time gave one row twice and skipped another)."""
    clock = Clock(1_800_000_000.0)
    h = await start(scenario=SCENARIO, clock=clock)
    for step, (dialect, player) in enumerate(
        [("fizzy", "p-1"), ("fizzy", "p-2"), ("xpro", "player001"), ("fizzy", "p-1"), ("fizzy", "p-3")] * 3
    ):
        clock.now += (-7, 11, -5, 3, -13)[step % 5]  # times go back and forth, as two replicas' would
        await adjust(h, dialect, player, [200 + step])
    _, everything, _ = await get(h, "/_sim/transactions")
    assert len(everything) == 13  # creating p-2 and p-3 books nothing
    for limit in (1, 2, 4):
        walked = [t for page in await walk(h, "/_sim/transactions", limit) for t in page]
        assert walked == everything, limit
    assert [t["time"] for t in everything] != sorted((t["time"] for t in everything), reverse=True)
    for dialect in ("fizzy", "xpro"):
        seqs = [t["seq"] for t in everything if t["dialect"] == dialect]
        assert seqs == sorted(seqs, reverse=True)  # a tenant's newest booked first


async def test_rows_dropped_by_retention_between_two_pages_do_not_shift_them(start: Start) -> None:
    """A cursor continues below the last row given, whatever retention dropped meanwhile: no row twice, no
    newer one, none skipped that is still kept (the shared store counts what it drops from each list).
    Tombstones forgotten past their bound likewise."""
    h = await start({"server": {"max_transactions": 6}}, scenario=SCENARIO)
    await adjust(h, "fizzy", "p-1", list(range(51, 61)))  # ten rows, balances 51-60: 55-60 are kept
    for path, items, top in (
        ("/_sim/transactions?dialect=fizzy", None, 60),
        ("/_sim/players/fizzy/p-1?", "transactions", 63),
    ):
        status, body, headers = await get(h, f"{path}&limit=2")
        assert status == 200 and [t["balance_after"] for t in (body[items] if items else body)] == [top, top - 1]
        await adjust(h, "fizzy", "p-1", [top + 1, top + 2, top + 3])  # three more: the three oldest kept go
        rest = await walk(h, f"{path}&cursor={headers['X-Next-Cursor']}", 2, items)
        assert [t["balance_after"] for page in rest for t in page] == [top - 2]  # the one kept below the page
    h = await start({"server": {"max_tombstones": 4}}, scenario=SCENARIO)  # tombstones: the same
    for n in range(4):
        assert (await h.amb.cancel("member001", f"R{n}")).json["status"]["code"] == 0
    status, body, headers = await get(h, "/_sim/tombstones?limit=2")
    assert status == 200 and [s["round"] for s in body["tombstones"]] == ["R3", "R2"]
    assert (await h.amb.cancel("member001", "R4")).json["status"]["code"] == 0  # R0 is forgotten
    rest = await walk(h, f"/_sim/tombstones?cursor={headers['X-Next-Cursor']}", 2, "tombstones")
    assert [s["round"] for page in rest for s in page] == ["R1"]


async def test_tombstones_page_with_their_counters(ph: Harness) -> None:
    for n in range(5):
        assert (await ph.amb.cancel("member001", f"R{n}")).json["status"]["code"] == 0
    pages = await walk(ph, "/_sim/tombstones?dialect=ambslot", 2, items="tombstones")
    assert [[s["round"] for s in page] for page in pages] == [["R4", "R3"], ["R2", "R1"], ["R0"]]
    status, body, _ = await get(ph, "/_sim/tombstones?limit=2")
    assert status == 200 and body["count"] == 5 and body["forgotten"] == 0 and len(body["tombstones"]) == 2


@pytest.mark.parametrize(
    "path",
    ["/_sim/players", "/_sim/transactions", "/_sim/players/fizzy/p-1", "/_sim/tombstones"],
)
async def test_bad_limit_or_cursor_is_400(ph: Harness, path: str) -> None:
    for limit in ("10001", "x", "-1", "1.5", "99999999999"):
        status, body, _ = await get(ph, f"{path}?limit={limit}")
        assert status == 400 and "limit must be a whole number from 1 to 10000" in body["error"], (limit, body)
    status, body, _ = await get(ph, f"{path}?limit=10000")
    assert status == 200
    status, body, _ = await get(ph, f"{path}?limit=0")  # 0, as before "no limit": the default page
    assert status == 200
    for cursor in ("garbage", "zz.1", "%00", "p.-1", "t." + "9" * 40):
        status, body, _ = await get(ph, f"{path}?cursor={cursor}")
        assert status == 400 and "cursor" in body["error"], (cursor, body)


async def test_a_cursor_of_another_listing_is_400(ph: Harness) -> None:
    for n in range(3):
        await adjust(ph, "fizzy", f"fz-{n}", [n])
    _, _, headers = await get(ph, "/_sim/players?limit=1")
    cursor = headers["X-Next-Cursor"]
    status, body, _ = await get(ph, f"/_sim/transactions?cursor={cursor}")
    assert status == 400 and "cursor" in body["error"]


async def test_the_python_client_follows_every_page(ph: Harness) -> None:
    for n in range(4):
        await adjust(ph, "fizzy", f"fz-{n}", [n + 1, n + 2, n + 3])  # created, then two adjusts
    _, players, _ = await get(ph, "/_sim/players")
    _, txns, _ = await get(ph, "/_sim/transactions?dialect=fizzy")
    control = Control(ph.url)
    control.page_size = 3  # several pages for a few rows
    assert await asyncio.to_thread(control.players) == players and len(players) == 7
    assert await asyncio.to_thread(control.transactions, "fizzy") == txns and len(txns) == 8
