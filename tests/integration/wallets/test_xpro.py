"""XPro through HTTP with the reference client: every endpoint, every code, the order of checks."""

from __future__ import annotations

import asyncio
import base64
import time
from decimal import Decimal

import jwt
import pytest

from simulator.dialects.client import Prepared, XproClient
from simulator.dialects.crypto import xpro_encrypt, xpro_signature
from tests.conftest import Clock, Harness, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis


async def balance_of(h: Harness, username: str = "player001") -> Decimal:
    reply = await h.xpro.balance(username)
    assert reply.json["code"] == 0, reply.body
    value = reply.json["data"]["balance"]
    assert isinstance(value, Decimal)
    return value


# auth


async def test_auth_returns_hs256_token_bound_to_agent(h: Harness) -> None:
    reply = await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": "demo-secret"})
    body = reply.json
    assert reply.status == 200 and body["code"] == 0 and body["message"] == "No error."
    data = body["data"]
    assert data["tokenType"] == "Bearer" and data["expiresIn"] == 3600
    header = jwt.get_unverified_header(data["accessToken"])
    claims = jwt.decode(data["accessToken"], options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["agentId"] == "demo" and claims["exp"] - claims["iat"] == 3600
    assert len(body["logUUID"]) == 36


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"agentId": "demo", "secret": "wrong"}, 10),
        ({"agentId": "other", "secret": "demo-secret"}, 10),
        ({"agentId": "demo"}, 11),
        ({"agentId": "demo", "secret": 5}, 11),
    ],
)
async def test_auth_refusals(h: Harness, payload: dict[str, object], code: int) -> None:
    reply = await h.xpro.call("/v2/auth", payload)
    assert reply.json["code"] == code
    assert "data" not in reply.json


async def test_unknown_and_blocked_agents_get_10(start: Start) -> None:
    h = await start({"xpro": {"agents": [{"id": "shut", "secret": "s", "api_key": "k" * 32, "blocked": True}]}})
    unknown = XproClient(h.url, agent_id="nobody", session=h.http)
    assert (await unknown.call("/v2/auth", {"agentId": "nobody", "secret": "x"})).json["code"] == 10
    blocked = XproClient(h.url, agent_id="shut", secret="s", api_key="k" * 32, session=h.http)
    assert (await blocked.call("/v2/auth", {"agentId": "shut", "secret": "s"})).json["code"] == 10


async def test_key_forms_hex_and_base64(start: Start) -> None:
    raw = bytes(range(32))
    agents = [
        {"id": "hexagent", "secret": "s1", "api_key": "hex:" + raw.hex()},
        {"id": "b64agent", "secret": "s2", "api_key": "base64:" + base64.b64encode(raw).decode()},
    ]
    h = await start({"xpro": {"agents": agents}})
    for agent in agents:
        client = XproClient(
            h.url, agent_id=agent["id"], secret=agent["secret"], api_key=agent["api_key"], session=h.http
        )
        await client.authenticate()
        assert (await client.create_member("alice")).json["code"] == 0


# members


async def test_create_member_then_duplicate_then_balance(h: Harness) -> None:
    await h.xpro.authenticate()
    created = await h.xpro.create_member("player001", siteId="site-9")
    assert created.json["code"] == 0 and "data" not in created.json
    assert (await h.xpro.create_member("player001")).json["code"] == 6
    reply = await h.xpro.balance("player001")
    assert reply.json["data"] == {"agentId": "demo", "username": "player001", "currency": "THB", "balance": 0}
    assert (await h.player_view("xpro", "player001"))["site_id"] == "site-9"


async def test_create_accepts_site_id_with_a_space(h: Harness) -> None:
    await h.xpro.authenticate()
    assert (await h.xpro.call("/v2/members", {"username": "bob", "Site ID": 7})).json["code"] == 0
    assert (await h.player_view("xpro", "bob"))["site_id"] == "7"


@pytest.mark.parametrize("username", ["", "a" * 26, "with space", "dash-ed", "plä", "user_1", 12345, None])
async def test_bad_usernames_are_parameter_errors(h: Harness, username: object) -> None:
    await h.xpro.authenticate()
    assert (await h.xpro.call("/v2/members", {"username": username})).json["code"] == 11


async def test_usernames_are_case_sensitive(xp: Harness) -> None:
    assert (await xp.xpro.create_member("PLAYER001")).json["code"] == 0
    assert (await xp.xpro.balance("Player001")).json["code"] == 8


async def test_unknown_player_gets_8_everywhere(xp: Harness) -> None:
    assert (await xp.xpro.balance("ghost")).json["code"] == 8
    assert (await xp.xpro.transfer("ghost", 10, "T1")).json["code"] == 8
    assert (await xp.xpro.cashout("ghost", "T2")).json["code"] == 8
    assert (await xp.xpro.check("ghost", "T1")).json["code"] == 8


# money


async def test_exact_decimals_deposit_then_withdraw(xp: Harness) -> None:
    deposit = await xp.xpro.transfer("player001", "100.1", "D1")
    assert deposit.json["data"] == {"amount": Decimal("100.1"), "balance": Decimal("100.1")}
    withdraw = await xp.xpro.transfer("player001", "-0.2", "W1")
    assert withdraw.json["code"] == 0
    assert withdraw.json["data"]["amount"] == Decimal("-0.2")
    assert withdraw.json["data"]["balance"] == Decimal("99.9")
    raw = await xp.xpro.send(xp.xpro.prepare("/v2/members/balance", {"username": "player001"}))
    assert raw.json["data"]["balance"] == Decimal("99.9")
    async with xp.http.post(
        xp.url + "/v2/members/balance",
        data=(p := xp.xpro.prepare("/v2/members/balance", {"username": "player001"})).body,
        headers=p.headers,
    ) as response:
        assert '"balance":99.9' in await response.text()


async def test_withdrawal_beyond_balance_is_2_and_changes_nothing(xp: Harness) -> None:
    await xp.xpro.transfer("player001", 50, "D1")
    reply = await xp.xpro.transfer("player001", "-50.01", "W1")
    assert reply.json["code"] == 2 and reply.json["message"] == "The balance is not enough."
    assert await balance_of(xp) == 50
    # the refused transId was not recorded: it can be used again once funds allow
    assert (await xp.xpro.transfer("player001", -50, "W1")).json["code"] == 0


@pytest.mark.parametrize("amount", [0, "0.001", "12.345", "1e-3", "10", True, None, [], "NaN", "1e16", -(10**16)])
async def test_bad_amounts_are_11(xp: Harness, amount: object) -> None:
    payload = {"username": "player001", "transId": "T-1", "amount": amount}
    if amount == "1e-3":
        payload = '{"username":"player001","transId":"T-1","amount":1e-3}'  # type: ignore[assignment]
    elif amount == "NaN":
        payload = '{"username":"player001","transId":"T-1","amount":NaN}'  # type: ignore[assignment]
    elif amount == "1e16":
        payload = '{"username":"player001","transId":"T-1","amount":1e16}'  # type: ignore[assignment]
    elif isinstance(amount, str):
        payload["amount"] = amount  # a numeric string is still not a number
    assert (await xp.xpro.call("/v2/members/transaction", payload)).json["code"] == 11
    assert await balance_of(xp) == 0


async def test_exponent_amount_with_two_places_is_accepted(xp: Harness) -> None:
    reply = await xp.xpro.call("/v2/members/transaction", '{"username":"player001","transId":"E1","amount":1.5E+2}')
    assert reply.json["code"] == 0 and reply.json["data"]["balance"] == 150


@pytest.mark.parametrize("trans_id", ["", "x" * 65, 42, None])
async def test_bad_trans_ids_are_11(xp: Harness, trans_id: object) -> None:
    reply = await xp.xpro.call("/v2/members/transaction", {"username": "player001", "transId": trans_id, "amount": 5})
    assert reply.json["code"] == 11


async def test_repeated_trans_id_on_transaction_is_3_and_applied_once(xp: Harness) -> None:
    assert (await xp.xpro.transfer("player001", 10, "SAME")).json["code"] == 0
    again = await xp.xpro.transfer("player001", 10, "SAME")
    assert again.json["code"] == 3 and again.json["message"] == "The transaction already exist."
    assert await balance_of(xp) == 10


async def test_trans_id_is_unique_across_transaction_and_cashout(xp: Harness) -> None:
    await xp.xpro.transfer("player001", 10, "SHARED")
    assert (await xp.xpro.cashout("player001", "SHARED")).json["code"] == 3
    assert await balance_of(xp) == 10


@pytest.mark.parametrize("policy", ["per_endpoint", "replay", "reject"])
async def test_one_trans_id_on_transaction_and_cashout_is_3_both_ways(start: Start, policy: str) -> None:
    h = await start({"xpro": {"duplicate_transid": policy}})
    await h.xpro.authenticate()
    await h.xpro.create_member("p1")
    assert (await h.xpro.transfer("p1", 10, "T1")).json["code"] == 0
    assert (await h.xpro.cashout("p1", "T1")).json["code"] == 3
    assert (await h.xpro.cashout("p1", "C1")).json["code"] == 0
    assert (await h.xpro.transfer("p1", 10, "C1")).json["code"] == 3
    assert (await h.xpro.transfer("p1", -10, "C1")).json["code"] == 3
    assert await balance_of(h, "p1") == 0 and (await h.invariants())["ok"]


async def test_duplicate_policy_replay(start: Start) -> None:
    h = await start({"xpro": {"duplicate_transid": "replay"}})
    await h.xpro.authenticate()
    await h.xpro.create_member("p1")
    first = await h.xpro.transfer("p1", 10, "R1")
    second = await h.xpro.transfer("p1", 10, "R1")
    assert second.json["code"] == 0 and second.json["data"] == first.json["data"]
    assert (await h.xpro.transfer("p1", 11, "R1")).json["code"] == 3  # same id, other request
    assert await balance_of(h, "p1") == 10


async def test_duplicate_policy_reject_applies_to_cashout(start: Start) -> None:
    h = await start({"xpro": {"duplicate_transid": "reject"}})
    await h.xpro.authenticate()
    await h.xpro.create_member("p1")
    await h.xpro.transfer("p1", 10, "D1")
    assert (await h.xpro.cashout("p1", "C1")).json["code"] == 0
    assert (await h.xpro.cashout("p1", "C1")).json["code"] == 3


async def test_cashout_takes_everything_and_replays(xp: Harness) -> None:
    await xp.xpro.transfer("player001", "2323.58", "D1")
    first = await xp.xpro.cashout("player001", "CASHOUT-1")
    assert first.json["code"] == 0
    assert first.json["data"] == {"amount": Decimal("2323.58"), "balance": 0}
    await xp.xpro.transfer("player001", 5, "D2")
    replay = await xp.xpro.cashout("player001", "CASHOUT-1")
    assert replay.json["code"] == 0 and replay.json["data"] == first.json["data"]
    assert await balance_of(xp) == 5  # the replay moved nothing
    await xp.xpro.create_member("player002")
    assert (await xp.xpro.cashout("player002", "CASHOUT-1")).json["code"] == 3


async def test_cashout_of_zero_balance_is_2(xp: Harness) -> None:
    assert (await xp.xpro.cashout("player001", "C0")).json["code"] == 2


async def test_check_transactions(xp: Harness) -> None:
    await xp.xpro.transfer("player001", "10.5", "D1")
    await xp.xpro.transfer("player001", "-0.5", "W1")
    await xp.xpro.cashout("player001", "C1")
    for trans_id, amount in (("D1", Decimal("10.5")), ("W1", Decimal("-0.5")), ("C1", Decimal("-10"))):
        data = (await xp.xpro.check("player001", trans_id)).json["data"]
        assert data["agentId"] == "demo" and data["transId"] == trans_id and data["username"] == "player001"
        assert data["amount"] == amount
        assert time.strptime(data["transactionTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert data["transactionTime"][-5] == "." and len(data["transactionTime"]) == 24
    missing = await xp.xpro.check("player001", "NOPE")
    assert missing.json["code"] == 4 and missing.json["message"] == "The transaction doesn't exist."
    await xp.xpro.create_member("player002")
    assert (await xp.xpro.check("player002", "D1")).json["code"] == 4  # another player's transaction


async def test_balance_is_rounded_to_six_places_on_output(xp: Harness) -> None:
    await xp.set_balance("xpro", "player001", Decimal("1.123456789"), "demo")
    assert await balance_of(xp) == Decimal("1.123457")
    assert (await xp.player_view("xpro", "player001", "demo"))["balance"] == Decimal("1.123456789")  # stored exactly


async def test_disabled_is_19_and_locked_is_20(xp: Harness) -> None:
    await xp.xpro.transfer("player001", 10, "D1")
    await xp.set_player("xpro", "player001", "demo", locked=True)
    assert (await xp.xpro.transfer("player001", 1, "D2")).json["code"] == 20
    assert (await xp.xpro.cashout("player001", "C1")).json["code"] == 20
    assert (await xp.xpro.balance("player001")).json["code"] == 0  # reading is still allowed
    await xp.set_player("xpro", "player001", "demo", locked=False, disabled=True)
    assert (await xp.xpro.balance("player001")).json["code"] == 19
    assert (await xp.xpro.transfer("player001", 1, "D3")).json["code"] == 19
    await xp.set_player("xpro", "player001", "demo", disabled=False)
    assert await balance_of(xp) == 10


# headers, signature, token, encryption


async def test_bad_signature_is_83(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = "0" * 64
    reply = await xp.xpro.send(prepared)
    assert reply.json["code"] == 83 and reply.json["message"] == "Signature verification failed"


async def test_signature_hex_is_case_insensitive(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = prepared.headers["x-signature"].upper()
    assert (await xp.xpro.send(prepared)).json["code"] == 0


@pytest.mark.parametrize("header", ["x-agentid", "x-timestamp", "x-nonce", "x-signature"])
async def test_missing_signature_headers_are_83(xp: Harness, header: str) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    del prepared.headers[header]
    assert (await xp.xpro.send(prepared)).json["code"] == 83


@pytest.mark.parametrize("offset", [-301, 301])
async def test_stale_or_future_timestamp_is_83(xp: Harness, offset: int) -> None:
    ts = str(int((time.time() + offset) * 1000))
    reply = await xp.xpro.call("/v2/members/balance", {"username": "player001"}, timestamp=ts)
    assert reply.json["code"] == 83


async def test_timestamp_inside_window_is_fine(xp: Harness) -> None:
    ts = str(int((time.time() - 250) * 1000))
    assert (await xp.xpro.call("/v2/members/balance", {"username": "player001"}, timestamp=ts)).json["code"] == 0


@pytest.mark.parametrize("nonce", ["abc", "G" * 32, "A" * 32])
async def test_malformed_nonce_is_83(xp: Harness, nonce: str) -> None:
    assert (await xp.xpro.call("/v2/members/balance", {"username": "player001"}, nonce=nonce)).json["code"] == 83


async def test_reused_nonce_is_83_even_with_a_fresh_body(xp: Harness) -> None:
    nonce = "0123456789abcdef0123456789abcdef"
    assert (await xp.xpro.call("/v2/members/balance", {"username": "player001"}, nonce=nonce)).json["code"] == 0
    again = await xp.xpro.call("/v2/members/balance", {"username": "player001"}, nonce=nonce)
    assert again.json["code"] == 83


async def test_replayed_request_is_83_and_moves_no_money(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/transaction", {"username": "player001", "amount": 5, "transId": "X1"})
    assert (await xp.xpro.send(prepared)).json["code"] == 0
    assert (await xp.xpro.send(prepared)).json["code"] == 83
    assert await balance_of(xp) == 5


async def test_missing_and_garbage_tokens_are_83(xp: Harness) -> None:
    payload = {"username": "player001"}
    assert (await xp.xpro.call("/v2/members/balance", payload, token="")).json["code"] == 83  # no header sent
    xp.xpro.token = None
    assert (await xp.xpro.call("/v2/members/balance", payload)).json["code"] == 83
    assert (await xp.xpro.call("/v2/members/balance", payload, token="not.a.jwt")).json["code"] == 83
    forged = jwt.encode(
        {"agentId": "demo", "iat": 1, "exp": 2**40}, "guessed-key-guessed-key-guessed-key-1234", "HS256"
    )
    assert (await xp.xpro.call("/v2/members/balance", payload, token=forged)).json["code"] == 83


async def test_expired_token_is_83(start: Start) -> None:
    clock = Clock(time.time())
    h = await start({"xpro": {"token_ttl": 60}}, clock=clock)
    await h.xpro.authenticate()
    await h.xpro.create_member("p1")
    clock.now += 61
    client = XproClient(h.url, session=h.http, clock=clock)
    client.token = h.xpro.token
    assert (await client.balance("p1")).json["code"] == 83
    await client.authenticate()
    assert (await client.balance("p1")).json["code"] == 0


async def test_foreign_token_is_83(start: Start) -> None:
    other = {"id": "other", "secret": "other-secret", "api_key": "z" * 32}
    h = await start({"xpro": {"agents": [other]}})
    await h.xpro.authenticate()
    await h.xpro.create_member("p1")
    them = XproClient(h.url, agent_id="other", secret="other-secret", api_key="z" * 32, session=h.http)
    them.token = h.xpro.token  # demo's token presented by agent "other"
    assert (await them.create_member("p1")).json["code"] == 83
    await them.authenticate()
    assert (await them.create_member("p1")).json["code"] == 0  # players are per agent


async def test_tampered_ciphertext_is_84(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/transaction", {"username": "player001", "amount": 9, "transId": "T"})
    cipher = prepared.notes["canonical"].rsplit("|", 1)[1]
    data = bytearray(base64.b64decode(cipher[40:]))
    data[0] ^= 1
    tampered = cipher[:40] + base64.b64encode(bytes(data)).decode()
    reply = await xp.xpro.send(resign(xp.xpro, prepared, tampered))
    assert reply.json["code"] == 84 and reply.json["message"] == "Encryption failed"
    assert await balance_of(xp) == 0


@pytest.mark.parametrize("cipher", ["", "short", "!" * 60, "A" * 39])
async def test_unusable_ciphertext_is_84(xp: Harness, cipher: str) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    assert (await xp.xpro.send(resign(xp.xpro, prepared, cipher))).json["code"] == 84


async def test_missing_cipher_text_field_is_84(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.body = b'{"data": "x"}'
    prepared.headers["x-signature"] = xpro_signature(
        "demo", prepared.headers["x-timestamp"], prepared.headers["x-nonce"], ""
    )
    assert (await xp.xpro.send(prepared)).json["code"] == 84


async def test_wrong_key_is_84(xp: Harness) -> None:
    reply = await xp.xpro.call("/v2/members/balance", {"username": "player001"}, key=b"w" * 32)
    assert reply.json["code"] == 84


@pytest.mark.parametrize("plaintext", ["not json", "[1, 2]", '"text"', "", "\xff"])
async def test_plaintext_that_is_not_an_object_is_11(xp: Harness, plaintext: str) -> None:
    assert (await xp.xpro.call("/v2/members/balance", plaintext)).json["code"] == 11


async def test_order_signature_before_agent_before_token_before_decrypt(xp: Harness) -> None:
    # unknown agent AND bad signature -> 83 (signature first)
    stranger = XproClient(xp.url, agent_id="ghost", session=xp.http)
    prepared = stranger.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = "f" * 64
    assert (await stranger.send(prepared)).json["code"] == 83
    # unknown agent, good signature, no token -> 10 (agent before token)
    assert (await stranger.call("/v2/members/balance", {"username": "player001"})).json["code"] == 10
    # no token AND wrong key -> 83 (token before decrypt)
    xp.xpro.token = None
    assert (await xp.xpro.call("/v2/members/balance", {"username": "x"}, key=b"w" * 32)).json["code"] == 83


async def test_non_post_and_oversized_bodies_are_coded_errors(start: Start) -> None:
    h = await start({"server": {"max_body_bytes": 2048}})
    async with h.http.get(h.url + "/v2/members/balance") as response:
        assert response.status == 200 and (await response.json())["code"] == 11
    await h.xpro.authenticate()
    reply = await h.xpro.call("/v2/members/balance", {"username": "p", "pad": "x" * 4096})
    assert reply.status == 200 and reply.json["code"] == 11


# concurrency


async def test_forty_concurrent_withdrawals_apply_exactly_the_affordable_number(xp: Harness) -> None:
    await xp.xpro.transfer("player001", 250, "FUND")
    replies = await asyncio.gather(*(xp.xpro.transfer("player001", -10, f"W{i}") for i in range(40)))
    codes = [r.json["code"] for r in replies]
    assert codes.count(0) == 25 and codes.count(2) == 15
    assert await balance_of(xp) == 0
    assert (await xp.invariants())["ok"]


async def test_same_trans_id_twenty_times_at_once_is_applied_once(xp: Harness) -> None:
    replies = await asyncio.gather(*(xp.xpro.transfer("player001", 7, "ONCE") for _ in range(20)))
    codes = sorted(r.json["code"] for r in replies)
    assert codes.count(0) == 1 and set(codes[1:]) <= {3, 35}
    assert await balance_of(xp) == 7
    assert len([t for t in await xp.transactions() if t["transaction"] == "ONCE"]) == 1


async def test_iv_must_be_random_per_request(xp: Harness) -> None:
    a = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    b = xp.xpro.prepare("/v2/members/balance", {"username": "player001"})
    assert a.body != b.body
    fixed = xpro_encrypt(b"0" * 32, b"{}", b"\x00" * 12)
    assert fixed == xpro_encrypt(b"0" * 32, b"{}", b"\x00" * 12)


def resign(client: XproClient, prepared: Prepared, cipher: str) -> Prepared:
    """Replace the cipherText of a prepared request and sign it again (so only decryption can fail)."""
    prepared.body = ('{"cipherText": "' + cipher + '"}').encode()
    h = prepared.headers
    h["x-signature"] = xpro_signature(h["x-agentid"], h["x-timestamp"], h["x-nonce"], cipher)
    return prepared
