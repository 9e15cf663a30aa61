"""The embedded store's paged reads: cursors that survive rows added meanwhile and rows dropped by
retention, a look-ahead so the last page has no cursor, and BadCursor for one it never gave."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulator import config
from simulator.service import Simulator
from simulator.store import BadCursor, Page


def sim(**server: int) -> Simulator:
    return Simulator(config.from_dict({"server": server} if server else {}))


def book(s: Simulator, player: str, count: int) -> None:
    ledger = s.ledger
    found = ledger.player("fizzy", "demo-public-key", player)
    if found is None:
        found = ledger.open("fizzy", "demo-public-key", player, "EUR", Decimal(0))
    for _ in range(count):
        ledger.set_balance(found, found.balance + 1)


async def test_transactions_continue_below_their_cursor_while_new_ones_arrive() -> None:
    s = sim()
    book(s, "a", 5)
    first = await s.store.read_transactions(None, None, None, None, 2)
    assert [t.seq for t in first.items] == [5, 4] and first.next == "t.4"
    book(s, "a", 3)  # seqs 6..8: above the cursor, not on the later pages
    second = await s.store.read_transactions(None, None, None, first.next, 2)
    third = await s.store.read_transactions(None, None, None, second.next, 2)
    assert [t.seq for t in second.items] == [3, 2] and [t.seq for t in third.items] == [1]
    assert third.next is None
    exact = await s.store.read_transactions(None, None, None, None, 8)
    assert len(exact.items) == 8 and exact.next is None  # a full last page has no cursor


async def test_a_cursor_below_dropped_rows_ends_the_listing() -> None:
    s = sim(max_transactions=3)
    book(s, "a", 6)  # rows 1..3 dropped by retention
    page = await s.store.read_transactions(None, None, None, "t.3", 10)
    assert page == Page([], None)
    assert [t.seq for t in (await s.store.read_transactions(None, None, None, None, 10)).items] == [6, 5, 4]


async def test_players_page_in_creation_order_and_a_players_history_newest_first() -> None:
    s = sim()
    for name in ("a", "b", "c"):
        book(s, name, 3)
    everyone = [p.key for p in s.ledger.players.values()]
    seen, cursor = [], None
    while True:
        page = await s.store.read_players(None, None, cursor, 2)
        seen += [p.key for p in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert seen == everyone
    found = await s.store.read_player("fizzy", "demo-public-key", "b", None, 2)
    assert found is not None
    player, history = found
    assert player.id == "b" and [t.balance_after for t in history.items] == [3, 2] and history.next is not None
    found = await s.store.read_player("fizzy", "demo-public-key", "b", history.next, 2)
    assert found is not None and [t.balance_after for t in found[1].items] == [1] and found[1].next is None
    assert await s.store.read_player("fizzy", "demo-public-key", "nobody", None, 2) is None


@pytest.mark.parametrize("cursor", ["x", "t.", "t.1", "p.1.2", "p.-1", "P.1", "p." + "1" * 19])
async def test_a_cursor_it_never_gave_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        await sim().store.read_players(None, None, cursor, 10)
