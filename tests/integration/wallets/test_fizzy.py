"""Fizzy Bubbly through HTTP with the reference client: signatures, every code, every rule of 2.4."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from simulator.dialects.client import FizzyClient
from simulator.dialects.crypto import fizzy_signature
from tests.conftest import Clock, Harness, Start
from tests.integration.wallets.test_scenarios_http import Gate, until

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis


async def balance(h: Harness, player: str = "p-1", currency: str = "EUR") -> Decimal:
    reply = await h.fizzy.balance(player, currency)
    assert reply.status == 200, reply.body
    value = reply.json["balance"]
    assert isinstance(value, Decimal)
    return value


def assert_error(reply: Any, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.json["code"] == code
    assert set(reply.json) == {"code", "description", "traceId"}
    assert reply.json["description"] and reply.json["traceId"]


# signature


async def test_balance_auto_creates_player_with_default_balance(h: Harness) -> None:
    reply = await h.fizzy.balance("p-1")
    assert reply.status == 200 and reply.json == {"balance": 1000, "currency": "EUR"}


async def test_signature_covers_method_url_and_body(h: Harness) -> None:
    prepared = h.fizzy.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    prepared.body = prepared.body.replace(b"EUR", b"USD")  # body changed after signing
    assert_error(await h.fizzy.send(prepared), 401, "ERROR_INVALID_SIGNATURE")
    wrong_url = h.fizzy.prepare("/wallet/balance", {"playerId": "p"}, url="http://elsewhere/wallet/balance")
    assert_error(await h.fizzy.send(wrong_url), 401, "ERROR_INVALID_SIGNATURE")
    wrong_key = h.fizzy.prepare("/wallet/balance", {"playerId": "p"}, private_key="not-the-key")
    assert_error(await h.fizzy.send(wrong_key), 401, "ERROR_INVALID_SIGNATURE")


async def test_uppercase_signature_hex_is_accepted(h: Harness) -> None:
    prepared = h.fizzy.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    prepared.headers["Signature"] = prepared.headers["Signature"].upper()
    assert (await h.fizzy.send(prepared)).status == 200


@pytest.mark.parametrize("header", ["Public-Key", "Signature"])
async def test_missing_auth_headers_are_401(h: Harness, header: str) -> None:
    prepared = h.fizzy.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    del prepared.headers[header]
    assert_error(await h.fizzy.send(prepared), 401, "ERROR_INVALID_SIGNATURE")


async def test_unknown_public_key_is_401(h: Harness) -> None:
    stranger = FizzyClient(h.url, public_key="who", session=h.http)
    assert_error(await stranger.balance("p-1"), 401, "ERROR_INVALID_SIGNATURE")


async def test_signature_is_checked_before_parsing(h: Harness) -> None:
    prepared = h.fizzy.prepare("/wallet/withdraw", b"{not json")
    prepared.headers["Signature"] = "0" * 64
    assert_error(await h.fizzy.send(prepared), 401, "ERROR_INVALID_SIGNATURE")
    assert_error(await h.fizzy.call("/wallet/withdraw", b"{not json"), 400, "ERROR_BAD_REQUEST")


async def test_public_url_setting_for_a_proxy(start: Start) -> None:
    h = await start({"fizzy": {"public_url": "https://wallet.example.com"}})
    client = FizzyClient("https://wallet.example.com", session=h.http)
    prepared = client.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    prepared.url = h.url + "/wallet/balance"  # sent to us, signed for the public URL
    assert (await h.fizzy.send(prepared)).status == 200
    assert (await h.fizzy.balance("p-1")).status == 401  # signed for the direct URL: refused


async def test_trust_forwarded_headers(start: Start) -> None:
    h = await start({"server": {"trust_forwarded": True}})
    body = b'{"playerId":"p-1","sessionId":"s","currency":"EUR"}'
    url = "https://casino.example/wallet/balance"
    headers = {
        "Public-Key": "demo-public-key",
        "Signature": fizzy_signature("demo-private-key", "POST", url, body),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "casino.example",
    }
    async with h.http.post(h.url + "/wallet/balance", data=body, headers=headers) as response:
        assert response.status == 200
    untrusting = await start()
    async with h.http.post(untrusting.url + "/wallet/balance", data=body, headers=headers) as response:
        assert response.status == 401


async def test_query_string_is_part_of_the_signed_url(h: Harness) -> None:
    payload = {"playerId": "p-1", "sessionId": "s", "currency": "EUR"}
    prepared = h.fizzy.prepare("/wallet/balance?brand=x", payload)
    assert (await h.fizzy.send(prepared)).status == 200
    prepared = h.fizzy.prepare("/wallet/balance?brand=x", payload, url=h.url + "/wallet/balance")
    assert (await h.fizzy.send(prepared)).status == 401


# withdraw


async def test_withdraw_then_deposit_exact(h: Harness) -> None:
    w = await h.fizzy.withdraw("p-1", "10.10", txn="w1")
    assert w.status == 200 and w.json == {"balance": Decimal("989.9"), "currency": "EUR"}
    d = await h.fizzy.deposit("p-1", "0.2", "w1", txn="d1")
    assert d.json == {"balance": Decimal("990.1"), "currency": "EUR"}


async def test_withdraw_more_than_balance(h: Harness) -> None:
    assert_error(await h.fizzy.withdraw("p-1", "1000.01"), 400, "ERROR_TRANSACTION_INSUFFICIENT_FUNDS")
    assert await balance(h) == 1000


async def test_jackpot_amount_must_add_up(h: Harness) -> None:
    ok = h.fizzy.money("p-1", 15, txn="w1", cashAmount=Decimal(10), jackpotAmount=Decimal(5))
    assert (await h.fizzy.call("/wallet/withdraw", ok)).status == 200
    bad = h.fizzy.money("p-1", 15, txn="w2", cashAmount=Decimal(10), jackpotAmount=None)
    assert_error(await h.fizzy.call("/wallet/withdraw", bad), 400, "ERROR_BAD_REQUEST")
    assert await balance(h) == 985


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal("-1"), "cashAmount": Decimal("-1")},
        {"amount": "5", "cashAmount": "5"},
        {"amount": Decimal("1.005"), "cashAmount": Decimal("1.005")},
        {"jackpotAmount": Decimal("-1")},
        {"isGameRoundFinished": "yes"},
        {"isGameRoundFinished": None},
        {"transactionId": 7},
        {"transactionId": ""},
        {"transactionId": "x" * 256},
        {"playerId": None},
        {"sessionId": ["s"]},
        {"currency": None},
        {"gameId": None},
        {"gameRoundId": True},
        {"isFeatureBuy": "no"},
    ],
)
async def test_bad_withdraw_fields_are_400_and_change_nothing(h: Harness, change: dict[str, Any]) -> None:
    payload = {**h.fizzy.money("p-1", 5), **change}
    assert_error(await h.fizzy.call("/wallet/withdraw", payload), 400, "ERROR_BAD_REQUEST")
    assert await balance(h) == 1000


@pytest.mark.parametrize("body", [b"", b"[]", b"null", b"{", b'{"amount": NaN}', b"\xff\xfe", b'"x"'])
async def test_broken_bodies_are_400(h: Harness, body: bytes) -> None:
    assert_error(await h.fizzy.call("/wallet/withdraw", body), 400, "ERROR_BAD_REQUEST")


async def test_currency_mismatch_is_bad_request(h: Harness) -> None:
    await h.fizzy.balance("p-1")
    assert_error(await h.fizzy.withdraw("p-1", 1, currency="USD"), 400, "ERROR_BAD_REQUEST")


async def test_players_strict_policy(start: Start) -> None:
    h = await start({"fizzy": {"players": "strict"}})
    assert_error(await h.fizzy.balance("nobody"), 400, "ERROR_BAD_REQUEST")
    assert_error(await h.fizzy.withdraw("nobody", 1), 400, "ERROR_BAD_REQUEST")


async def test_blocked_player_cannot_bet_but_gets_wins_and_refunds(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.withdraw("p-1", 10, txn="w2", round_id="r2")
    await h.set_player("fizzy", "p-1", "demo-public-key", blocked=True)
    assert_error(await h.fizzy.withdraw("p-1", 1, txn="w3"), 400, "ERROR_BAD_REQUEST_PLAYER_BLOCKED")
    assert (await h.fizzy.deposit("p-1", 25, "w1", txn="d1")).status == 200
    assert (await h.fizzy.rollback("p-1", "w2", txn="r1", round_id="r2")).status == 200
    assert await balance(h) == 1015  # 1000 - 10 - 10 + 25 + 10


async def test_bet_limit_reality_check_and_inactive_games(start: Start) -> None:
    h = await start({"fizzy": {"inactive_games": ["old-game"]}})
    await h.fizzy.balance("p-1")
    await h.set_player("fizzy", "p-1", "demo-public-key", bet_limit=Decimal("50"))
    assert_error(await h.fizzy.withdraw("p-1", "50.01"), 400, "ERROR_TRANSACTION_LIMIT_EXCEEDED")
    assert (await h.fizzy.withdraw("p-1", 50)).status == 200
    assert_error(await h.fizzy.withdraw("p-1", 1, game="old-game"), 400, "ERROR_GAME_NOT_ACTIVE")
    await h.set_player("fizzy", "p-1", "demo-public-key", reality_check=True)
    assert_error(await h.fizzy.withdraw("p-1", 1), 400, "ERROR_TRANSACTION_REALITY_CHECK")
    assert await balance(h) == 950


# sessions


async def test_sessions_are_bound_to_their_first_player(h: Harness) -> None:
    assert (await h.fizzy.balance("p-1", session="s-A")).status == 200
    assert_error(await h.fizzy.balance("p-2", session="s-A"), 400, "ERROR_INVALID_SESSION")


async def test_sessions_strict_policy(start: Start) -> None:
    h = await start(
        {"fizzy": {"sessions": "strict"}},
        scenario="name: s\nplayers:\n  - {dialect: fizzy, playerId: p-1, sessions: [known]}\n",
    )
    assert (await h.fizzy.balance("p-1", session="known")).status == 200
    assert_error(await h.fizzy.balance("p-1", session="unknown"), 400, "ERROR_INVALID_SESSION")


async def test_expired_session_refuses_withdraw_but_accepts_deposit_and_rollback(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.withdraw("p-1", 10, txn="w2", round_id="r2")
    await h.set_player("fizzy", "p-1", "demo-public-key", session_expired=True)
    assert_error(await h.fizzy.withdraw("p-1", 1, txn="w3"), 400, "ERROR_SESSION_EXPIRED")
    assert_error(await h.fizzy.balance("p-1"), 400, "ERROR_SESSION_EXPIRED")
    assert (await h.fizzy.deposit("p-1", 5, "w1", txn="d1")).status == 200
    assert (await h.fizzy.rollback("p-1", "w2", txn="r1", round_id="r2")).json["balance"] == 995


async def test_session_ttl(start: Start) -> None:
    clock = Clock(1_800_000_000.0)
    h = await start({"fizzy": {"session_ttl": 60}}, clock=clock)
    assert (await h.fizzy.withdraw("p-1", 1, txn="w1")).status == 200
    clock.now += 61
    assert_error(await h.fizzy.withdraw("p-1", 1, txn="w2"), 400, "ERROR_SESSION_EXPIRED")
    assert (await h.fizzy.withdraw("p-1", 1, txn="w3", session="fresh-session")).status == 200


# deposit rules


async def test_deposit_needs_a_withdraw_of_the_same_player(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    assert_error(await h.fizzy.deposit("p-1", 5, "nope", txn="d1"), 400, "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND")
    assert_error(
        await h.fizzy.deposit("p-2", 5, "w1", txn="d2", session="s-2"), 400, "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND"
    )
    await h.fizzy.deposit("p-1", 0, "w1", txn="d3")  # a lost round closes with a zero deposit
    await h.fizzy.deposit("p-1", 30, "w1", txn="d4")  # several wins on one bet
    assert await balance(h) == 1020


async def test_deposit_on_a_rolled_back_withdraw_is_bad_request(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.rollback("p-1", "w1", txn="rb1")
    assert_error(await h.fizzy.deposit("p-1", 5, "w1", txn="d1"), 400, "ERROR_BAD_REQUEST")
    assert await balance(h) == 1000


async def test_deposit_referring_to_a_deposit_is_not_found(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.deposit("p-1", 5, "w1", txn="d1")
    assert_error(await h.fizzy.deposit("p-1", 5, "d1", txn="d2"), 400, "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND")


# rollback matrix


async def test_rollback_refunds_the_stored_amount(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", "12.34", txn="w1")
    reply = await h.fizzy.rollback("p-1", "w1", txn="rb1")
    assert reply.status == 200 and reply.json == {"balance": 1000, "currency": "EUR"}


async def test_rollback_of_unknown_withdraw(h: Harness) -> None:
    await h.fizzy.balance("p-1")
    assert_error(await h.fizzy.rollback("p-1", "ghost", txn="rb1"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    assert_error(await h.fizzy.rollback("p-9", "ghost", txn="rb2"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")


async def test_rollback_twice_changes_nothing_the_second_time(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 40, txn="w1")
    assert (await h.fizzy.rollback("p-1", "w1", txn="rb1")).json["balance"] == 1000
    await h.fizzy.withdraw("p-1", 5, txn="w2", round_id="r2")
    second = await h.fizzy.rollback("p-1", "w1", txn="rb2")
    assert second.status == 200 and second.json["balance"] == 995
    assert (await h.invariants())["ok"]


async def test_rollback_after_deposit_is_bad_request(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 40, txn="w1")
    await h.fizzy.deposit("p-1", 100, "w1", txn="d1")
    assert_error(await h.fizzy.rollback("p-1", "w1", txn="rb1"), 400, "ERROR_BAD_REQUEST")
    assert await balance(h) == 1060


async def test_rollback_of_a_deposit_is_not_found(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 40, txn="w1")
    await h.fizzy.deposit("p-1", 10, "w1", txn="d1")
    assert_error(await h.fizzy.rollback("p-1", "d1", txn="rb1"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")


async def test_rollback_needs_its_fields(h: Harness) -> None:
    payload = {"transactionId": "rb", "playerId": "p-1", "sessionId": "s", "gameId": "g", "gameRoundId": "r"}
    assert_error(await h.fizzy.call("/wallet/rollback", payload), 400, "ERROR_BAD_REQUEST")


# idempotency


async def test_same_payload_replays_the_original_body(h: Harness) -> None:
    payload = h.fizzy.money("p-1", 10, txn="w1")
    first = await h.fizzy.call("/wallet/withdraw", payload)
    await h.fizzy.withdraw("p-1", 5, txn="w2", round_id="r2")
    again = await h.fizzy.call("/wallet/withdraw", payload)
    assert again.status == 200 and again.json == first.json == {"balance": 990, "currency": "EUR"}
    assert await balance(h) == 985


async def test_same_payload_with_other_number_spelling_is_the_same(h: Harness) -> None:
    text = (
        '{"transactionId":"w1","playerId":"p-1","sessionId":"s","currency":"EUR","gameId":"g","gameRoundId":"r",'
        '"amount":%s,"cashAmount":%s,"jackpotAmount":null,"isGameRoundFinished":false}'
    )
    assert (await h.fizzy.call("/wallet/withdraw", text % ("10", "10"))).status == 200
    assert (await h.fizzy.call("/wallet/withdraw", text % ("10.0", "10.00"))).status == 200
    assert (await h.fizzy.balance("p-1", session="s")).json["balance"] == 990


async def test_different_payload_same_id_is_duplicate(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    assert_error(await h.fizzy.withdraw("p-1", 11, txn="w1"), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert_error(await h.fizzy.deposit("p-1", 1, "w1", txn="w1"), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert await balance(h) == 990


async def test_rollback_replay(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    first = await h.fizzy.rollback("p-1", "w1", txn="rb1")
    again = await h.fizzy.rollback("p-1", "w1", txn="rb1")
    assert again.json == first.json and await balance(h) == 1000


# concurrency and shape


async def test_concurrent_withdrawals_never_overdraw(start: Start) -> None:
    h = await start({"fizzy": {"default_balance": "100"}})
    replies = await asyncio.gather(*(h.fizzy.withdraw("p-1", 3, txn=f"w{i}", round_id=f"r{i}") for i in range(50)))
    statuses = [r.status for r in replies]
    assert statuses.count(200) == 33 and statuses.count(400) == 17
    assert await balance(h) == 1 and (await h.invariants())["ok"]


async def test_same_transaction_at_once_is_applied_once(h: Harness) -> None:
    payload = h.fizzy.money("p-1", 10, txn="w1")
    replies = await asyncio.gather(*(h.fizzy.call("/wallet/withdraw", payload) for _ in range(20)))
    # each is the replay of the one withdraw, or (on a shared store, where a claim spans the round trips
    # to Redis) refused as still pending
    assert all((r.status, r.json.get("balance")) == (200, 990) or r.json["code"] == "ERROR_TIMEOUT" for r in replies)
    assert any(r.status == 200 for r in replies)
    assert await balance(h) == 990


async def test_resolve_timestamp_policy(start: Start) -> None:
    h = await start({"fizzy": {"resolve_timestamp": True}})
    body = (await h.fizzy.balance("p-1")).json
    assert isinstance(body["resolveTimestamp"], Decimal) and body["resolveTimestamp"] > 1_700_000_000_000
    plain = await start()
    assert "resolveTimestamp" not in (await plain.fizzy.balance("p-1")).json


async def test_get_is_a_coded_400(h: Harness) -> None:
    async with h.http.get(h.url + "/wallet/balance") as response:
        body = await response.json()
    assert response.status in (400, 401) and body["code"] in ("ERROR_BAD_REQUEST", "ERROR_INVALID_SIGNATURE")


# one id, several operations (issue 9, item 1)


async def test_withdraw_body_posted_to_deposit_or_rollback_is_duplicate(h: Harness) -> None:
    payload = {**h.fizzy.money("p-1", 10, txn="w1"), "withdrawTransactionId": "w1"}
    assert (await h.fizzy.call("/wallet/withdraw", payload)).json["balance"] == 990
    for path in ("/wallet/deposit", "/wallet/rollback"):
        reply = await h.fizzy.call(path, payload)
        assert_error(reply, 400, "ERROR_TRANSACTION_DUPLICATE")
        assert "withdraw" in reply.headers["X-Sim-Detail"]
    assert await balance(h) == 990
    assert [t["kind"] for t in await h.transactions()] == ["withdraw"]


async def test_rollback_id_reused_as_withdraw_id_is_duplicate(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    # a body that is valid for both endpoints: the rollback is applied, the same body as a withdraw is not
    # a replay of it
    payload = {**h.fizzy.money("p-1", 10, txn="rb1", round_id="r9"), "withdrawTransactionId": "w1"}
    assert (await h.fizzy.call("/wallet/rollback", payload)).json["balance"] == 1000
    assert_error(await h.fizzy.call("/wallet/withdraw", payload), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert_error(await h.fizzy.withdraw("p-1", 3, txn="rb1"), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert await balance(h) == 1000


async def test_rollback_carrying_the_withdraw_id_as_its_own_is_duplicate(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    assert_error(await h.fizzy.rollback("p-1", "w1", txn="w1"), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert await balance(h) == 990


async def test_deposit_id_reused_by_a_rollback_is_duplicate(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.withdraw("p-1", 10, txn="w2", round_id="r2")
    await h.fizzy.deposit("p-1", 5, "w1", txn="d1")
    assert_error(await h.fizzy.rollback("p-1", "w2", txn="d1", round_id="r2"), 400, "ERROR_TRANSACTION_DUPLICATE")
    assert await balance(h) == 985


# late arrivals: tombstones (issue 9, item 2)


async def test_rollback_before_its_withdraw_leaves_a_tombstone(h: Harness) -> None:
    await h.fizzy.balance("p-1")
    first = await h.fizzy.rollback("p-1", "w-late", txn="rb1")
    assert_error(first, 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    late = await h.fizzy.withdraw("p-1", 10, txn="w-late")
    assert_error(late, 400, "ERROR_BAD_REQUEST")
    assert "rolled back before it arrived" in late.headers["X-Sim-Detail"]
    assert await balance(h) == 1000
    # a retry of the rollback is answered the same and the withdraw stays refused
    assert_error(await h.fizzy.rollback("p-1", "w-late", txn="rb1"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    assert_error(await h.fizzy.withdraw("p-1", 10, txn="w-late"), 400, "ERROR_BAD_REQUEST")
    assert_error(await h.fizzy.deposit("p-1", 5, "w-late", txn="d1"), 400, "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND")
    assert await balance(h) == 1000 and not await h.transactions()
    _, journal = await h.admin("GET", "/_sim/journal?operation=withdraw")
    assert "rolled back before it arrived" in journal[0]["detail"]
    status, stones = await h.admin("GET", "/_sim/tombstones")
    assert status == 200 and stones["count"] == 1
    (stone,) = stones["tombstones"]
    assert stone["dialect"] == "fizzy" and stone["transaction"] == "w-late" and stone["by"] == "rb1"
    assert stone["player"] == "p-1" and stone["refused"] == 2  # the two withdraws
    status, report = await h.admin("GET", "/_sim/invariants")
    assert status == 200 and report["tombstones"] == 1


async def test_rollback_for_a_player_never_seen_leaves_a_tombstone(h: Harness) -> None:
    assert_error(await h.fizzy.rollback("p-new", "w9", txn="rb9"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    assert_error(await h.fizzy.withdraw("p-new", 10, txn="w9"), 400, "ERROR_BAD_REQUEST")
    assert await balance(h, "p-new") == 1000
    # another player's withdraw cannot take the id either: the ids are one namespace per brand
    assert_error(await h.fizzy.withdraw("p-1", 10, txn="w9", session="s-2"), 400, "ERROR_BAD_REQUEST")


async def test_refused_rollback_leaves_no_tombstone(h: Harness) -> None:
    await h.fizzy.withdraw("p-1", 10, txn="w1")
    await h.fizzy.deposit("p-1", 5, "w1", txn="d1")
    # names a transaction that exists but is no withdraw: no tombstone, the id is taken anyway
    assert_error(await h.fizzy.rollback("p-1", "d1", txn="rb1"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    # a bad session refuses the request before it can leave a trace
    await h.fizzy.balance("p-2", session="s-of-p2")
    reply = await h.fizzy.rollback("p-1", "w-other", txn="rb2", session="s-of-p2")
    assert_error(reply, 400, "ERROR_INVALID_SESSION")
    assert (await h.fizzy.withdraw("p-1", 1, txn="w-other")).status == 200
    assert (await h.admin("GET", "/_sim/tombstones"))[1]["count"] == 0


async def test_rollback_while_its_withdraw_is_in_flight(start: Start) -> None:
    gate = Gate()
    rule = "rules:\n  - {name: slow, match: {operation: withdraw}, delay: 2s, times: 1}\n"
    h = await start(scenario="name: slow\n" + rule, sleep=gate)
    await h.fizzy.balance("p-1")
    withdraw = asyncio.ensure_future(h.fizzy.withdraw("p-1", 10, txn="w1"))
    await until(lambda: h.sim.in_flight("fizzy", "demo-public-key", "w1"))
    assert_error(await h.fizzy.rollback("p-1", "w1", txn="rb1"), 400, "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
    gate.release()
    assert_error(await withdraw, 400, "ERROR_BAD_REQUEST")
    assert await balance(h) == 1000 and (await h.invariants())["ok"]
