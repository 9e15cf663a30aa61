"""AMBSlot through HTTP with the reference client: the envelope, every code, every rule of 3.3."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest

from simulator.dialects.client import AmbslotClient
from tests.conftest import Harness, Start
from tests.integration.wallets.test_scenarios_http import Gate, until

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def code(reply: Any) -> int:
    assert reply.status == 200, reply.body
    value = reply.json["status"]["code"]
    assert isinstance(value, Decimal)
    return int(value)


async def wallet(h: Harness, user: str = "member001") -> Decimal:
    reply = await h.amb.balance(user)
    assert code(reply) == 0
    value = reply.json["data"]["wallet"]["balance"]
    assert isinstance(value, Decimal)
    return value


async def test_balance_envelope(h: Harness) -> None:
    reply = await h.amb.balance("member001")
    assert reply.json["status"] == {"code": 0, "message": "Success"}
    data = reply.json["data"]
    assert data["username"] == "member001" and data["wallet"]["balance"] == 1000
    assert ISO.fullmatch(data["wallet"]["lastUpdate"])


async def test_bet_then_payout(h: Harness) -> None:
    bet = await h.amb.bet("member001", "R1", "250.5", txn="b1")
    assert code(bet) == 0
    data = bet.json["data"]
    assert data["balance"] == {"before": 1000, "after": Decimal("749.5")}
    assert data["wallet"]["balance"] == Decimal("749.5") and data["refId"] == "b1"
    payout = await h.amb.payout("member001", "R1", 50, turnover="250.5", txn="p1")
    assert payout.json["data"]["balance"] == {"before": Decimal("749.5"), "after": Decimal("799.5")}


async def test_insufficient_balance_is_800(h: Harness) -> None:
    reply = await h.amb.bet("member001", "R1", "1000.01")
    assert code(reply) == 800 and reply.json["status"]["message"] == "Balance insufficient"
    assert "data" not in reply.json
    assert await wallet(h) == 1000


async def test_second_bet_on_a_round_is_900(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 10, txn="b1")
    assert code(await h.amb.bet("member001", "R1", 10, txn="b2")) == 900
    assert await wallet(h) == 990


async def test_payout_without_bet_is_accepted(h: Harness) -> None:
    assert code(await h.amb.payout("member001", "FREE-SPIN", 30, txn="p1")) == 0
    assert await wallet(h) == 1030


async def test_settle_debits_and_credits_atomically(h: Harness) -> None:
    reply = await h.amb.settle("member001", "R1", bet=100, win=250, txn="s1")
    assert reply.json["data"]["balance"] == {"before": 1000, "after": 1150}
    assert len([t for t in await h.transactions() if t["transaction"] == "s1"]) == 1


async def test_settle_with_short_funds_changes_nothing(h: Harness) -> None:
    reply = await h.amb.settle("member001", "R1", bet="1000.01", win=5000, txn="s1")
    assert code(reply) == 800
    assert await wallet(h) == 1000 and not [t for t in await h.transactions() if t["kind"] == "settle"]


async def test_settle_on_a_round_with_a_bet_is_900(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 10, txn="b1")
    assert code(await h.amb.settle("member001", "R1", bet=10, win=20, txn="s1")) == 900


async def test_cancel_refunds_the_stored_bet(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 40, txn="b1")
    reply = await h.amb.cancel("member001", "R1", amount=999, txn="c1")  # the request's amount is ignored
    assert reply.json["data"]["balance"] == {"before": 960, "after": 1000}


async def test_second_cancel_changes_nothing(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 40, txn="b1")
    await h.amb.cancel("member001", "R1", txn="c1")
    again = await h.amb.cancel("member001", "R1", txn="c2")
    assert code(again) == 0 and again.json["data"]["balance"] == {"before": 1000, "after": 1000}
    assert (await h.invariants())["ok"]


async def test_cancel_of_unknown_round_is_0_with_unchanged_balance(h: Harness) -> None:
    reply = await h.amb.cancel("member001", "NEVER", txn="c1")
    assert code(reply) == 0 and reply.json["data"]["balance"] == {"before": 1000, "after": 1000}


async def test_cancel_after_payout_is_997(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 40, txn="b1")
    await h.amb.payout("member001", "R1", 100, txn="p1")
    assert code(await h.amb.cancel("member001", "R1", txn="c1")) == 997
    assert await wallet(h) == 1060


async def test_cancel_after_settle_is_997(h: Harness) -> None:
    await h.amb.settle("member001", "R1", bet=10, win=0, txn="s1")
    assert code(await h.amb.cancel("member001", "R1", txn="c1")) == 997


async def test_payout_on_a_cancelled_round_is_997(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 40, txn="b1")
    await h.amb.cancel("member001", "R1", txn="c1")
    assert code(await h.amb.payout("member001", "R1", 100, txn="p1")) == 997
    assert await wallet(h) == 1000


async def test_repeat_with_same_payload_replays(h: Harness) -> None:
    payload = h.amb.fields("member001", "R1", 10, txn="b1")
    first = await h.amb.call("/bet", payload)
    again = await h.amb.call("/bet", payload)
    assert again.json == first.json and await wallet(h) == 990


async def test_repeat_with_different_payload_is_900(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 10, txn="b1")
    assert code(await h.amb.bet("member001", "R2", 10, txn="b1")) == 900
    assert await wallet(h) == 990


async def test_unknown_agent_is_998(h: Harness) -> None:
    stranger = AmbslotClient(h.url, agent="nobody", session=h.http)
    assert code(await stranger.balance("member001")) == 998
    assert code(await stranger.bet("member001", "R1", 1)) == 998


async def test_strict_players_is_908(start: Start) -> None:
    h = await start({"ambslot": {"players": "strict"}})
    assert code(await h.amb.balance("ghost")) == 908
    assert code(await h.amb.bet("ghost", "R1", 1)) == 908


async def test_game_list_is_995(start: Start) -> None:
    h = await start({"ambslot": {"games": ["GH"]}})
    assert code(await h.amb.bet("member001", "R1", 1, game="GH")) == 0
    assert code(await h.amb.bet("member001", "R2", 1, game="XX")) == 995


async def test_currency_mismatch_is_997(h: Harness) -> None:
    assert code(await h.amb.bet("member001", "R1", 1, currency="USD")) == 997


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal(-1)},
        {"amount": "10"},
        {"amount": None},
        {"amount": Decimal("0.001")},
        {"username": ""},
        {"roundId": 5},
        {"transactionId": None},
        {"isEndRound": "false"},
        {"featureBuy": None},
        {"timestamp": 1},
        {"game": None},
        {"agent": None},
    ],
)
async def test_bad_fields_are_997(h: Harness, change: dict[str, Any]) -> None:
    payload = {**h.amb.fields("member001", "R1", 10), **change}
    assert code(await h.amb.call("/bet", payload)) == 997
    assert await wallet(h) == 1000


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b'{"username": Infinity}', b"\xff"])
async def test_broken_json_is_997(h: Harness, body: bytes) -> None:
    assert code(await h.amb.call("/bet", body)) == 997


async def test_payout_and_settle_need_their_extra_fields(h: Harness) -> None:
    payout = h.amb.fields("member001", "R1", 10)  # no turnover
    assert code(await h.amb.call("/payout", payout)) == 997
    settle = h.amb.fields("member001", "R1", 10, turnover=Decimal(1))  # no bet, winlose
    assert code(await h.amb.call("/settle", settle)) == 997


async def test_locked_wallet_refuses_bets_but_pays_wins(h: Harness) -> None:
    await h.amb.bet("member001", "R1", 10, txn="b1")
    await h.set_player("ambslot", "member001", "demo", locked=True)
    assert code(await h.amb.bet("member001", "R2", 10, txn="b2")) == 999
    assert code(await h.amb.payout("member001", "R1", 20, txn="p1")) == 0
    assert await wallet(h) == 1010


async def test_allow_list_of_source_addresses(start: Start) -> None:
    h = await start({"ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    assert code(await h.amb.balance("member001")) == 998
    ok = await start({"ambslot": {"allowed_sources": ["127.0.0.1"]}})
    assert code(await ok.amb.balance("member001")) == 0


async def test_mount_prefix(start: Start) -> None:
    h = await start({"ambslot": {"prefix": "/amb/"}})
    client = AmbslotClient(h.url + "/amb", session=h.http)
    assert code(await client.bet("member001", "R1", 5)) == 0
    async with h.http.post(h.url + "/bet", json={}) as response:
        assert response.status == 404


async def test_concurrent_bets_never_overdraw(start: Start) -> None:
    h = await start({"ambslot": {"default_balance": "100"}})
    replies = await asyncio.gather(*(h.amb.bet("member001", f"R{i}", 7) for i in range(30)))
    codes = [code(r) for r in replies]
    assert codes.count(0) == 14 and codes.count(800) == 16
    assert await wallet(h) == 2 and (await h.invariants())["ok"]


async def test_allow_list_uses_x_forwarded_for_only_when_trusted(start: Start) -> None:
    body = {"username": "member001", "agentId": "demo"}
    headers = {"X-Forwarded-For": "10.1.2.3, 127.0.0.1"}
    trusting = await start({"server": {"trust_forwarded": True}, "ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    async with trusting.http.post(trusting.url + "/balance", json=body, headers=headers) as response:
        assert (await response.json())["status"]["code"] == 0
    direct = await start({"ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    async with direct.http.post(direct.url + "/balance", json=body, headers=headers) as response:
        assert (await response.json())["status"]["code"] == 998  # a client cannot claim an address


# one id, several operations (issue 9, item 1): ids are keyed per operation


async def test_cancel_carrying_the_bets_transaction_id_refunds(h: Harness) -> None:
    bet = h.amb.fields("member001", "R1", 40, txn="T1")
    assert code(await h.amb.call("/bet", bet)) == 0
    cancel = await h.amb.call("/cancel", bet)  # the bet's id and fields, sent to /cancel
    assert code(cancel) == 0 and cancel.json["data"]["balance"] == {"before": 960, "after": 1000}
    assert cancel.json["data"]["refId"] == "T1"
    again = await h.amb.call("/cancel", bet)  # idempotent under (cancel, T1)
    assert again.json == cancel.json and await wallet(h) == 1000
    assert code(await h.amb.call("/bet", bet)) == 0 and await wallet(h) == 1000  # the bet's own replay
    assert [t["kind"] for t in reversed(await h.transactions())] == ["bet", "cancel"]  # oldest first
    assert (await h.invariants())["ok"]


async def test_payout_carrying_the_bets_transaction_id_credits(h: Harness) -> None:
    bet = h.amb.fields("member001", "R1", 40, txn="T1")
    await h.amb.call("/bet", bet)
    payout = await h.amb.call("/payout", {**bet, "turnover": Decimal(40)})
    assert code(payout) == 0 and payout.json["data"]["balance"] == {"before": 960, "after": 1000}
    again = await h.amb.call("/payout", {**bet, "turnover": Decimal(40)})
    assert again.json == payout.json and await wallet(h) == 1000
    other = await h.amb.call("/payout", {**bet, "turnover": Decimal(40), "amount": Decimal(41)})
    assert code(other) == 900 and await wallet(h) == 1000  # same operation and id, another payload


async def test_settle_and_bet_with_one_id_on_different_rounds(h: Harness) -> None:
    assert code(await h.amb.settle("member001", "R1", bet=10, win=30, txn="T1")) == 0
    assert code(await h.amb.bet("member001", "R2", 5, txn="T1")) == 0
    assert await wallet(h) == 1015 and (await h.invariants())["ok"]


# late arrivals: tombstones (issue 9, item 2)


async def test_cancel_before_the_bet_leaves_a_tombstone(h: Harness) -> None:
    cancel = await h.amb.cancel("member001", "R-LATE", txn="c1")
    assert code(cancel) == 0 and cancel.json["data"]["balance"] == {"before": 1000, "after": 1000}
    late = await h.amb.bet("member001", "R-LATE", 40, txn="b1")
    assert code(late) == 997 and "cancelled before the bet arrived" in late.headers["X-Sim-Detail"]
    assert code(await h.amb.settle("member001", "R-LATE", bet=10, win=30, txn="s1")) == 997
    assert code(await h.amb.payout("member001", "R-LATE", 30, txn="p1")) == 997
    again = await h.amb.cancel("member001", "R-LATE", txn="c1")  # the cancel's retry: a replay
    assert again.json == cancel.json
    assert code(await h.amb.bet("member001", "R-LATE", 40, txn="b1")) == 997
    assert await wallet(h) == 1000
    _, journal = await h.admin("GET", "/_sim/journal?operation=bet")
    assert "cancelled before the bet arrived" in journal[0]["detail"]
    _, stones = await h.admin("GET", "/_sim/tombstones?dialect=ambslot")
    (stone,) = stones["tombstones"]
    assert stone["round"] == "R-LATE" and stone["player"] == "member001" and stone["by"] == "c1"
    assert stone["refused"] == 4
    status, report = await h.admin("GET", "/_sim/invariants")
    assert status == 200 and report["tombstones"] == 1
    # another player's round of the same name is not affected
    assert code(await h.amb.bet("member002", "R-LATE", 40, txn="b2")) == 0


async def test_cancel_while_the_bet_is_in_flight(start: Start) -> None:
    gate = Gate()
    rule = "rules:\n  - {name: slow, match: {operation: bet}, delay: 2s, times: 1}\n"
    h = await start(scenario="name: slow\n" + rule, sleep=gate)
    bet = h.amb.fields("member001", "R1", 40, txn="T1")
    pending = asyncio.ensure_future(h.amb.call("/bet", bet))
    await until(lambda: gate.delays == [2.0])
    cancel = await h.amb.call("/cancel", bet)  # the provider gave up on the bet and cancels it
    assert code(cancel) == 0 and cancel.json["data"]["balance"] == {"before": 1000, "after": 1000}
    gate.release()
    assert code(await pending) == 997
    assert await wallet(h) == 1000 and (await h.invariants())["ok"]
