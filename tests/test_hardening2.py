"""Regression tests of issue 19 (hardening, round two), items 1, 2, 8, 9 and 10, through HTTP against a real
server: XPro agents cannot be locked out with junk nonces, stalled live-feed pages are dropped, rule patterns
run on a linear-time engine, the journal's byte bound holds for bodies of many small objects, and one peer
cannot take every connection."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import STORES, Start

# item 1: nonces of unproven requests take no slot


@pytest.mark.parametrize("store", STORES)
async def test_token_less_junk_cannot_lock_an_xpro_agent_out(start: Start) -> None:
    h = await start({"xpro": {"max_nonces": 5}})
    for _ in range(40):  # far past max_nonces: signed (anyone can sign), agent known, no token
        junk = await h.xpro.call("/v2/members/balance", {"username": "player001"})
        assert junk.json["code"] == 83 and "Bearer" in junk.headers["X-Sim-Detail"]
    for _ in range(20):  # a wrong secret on /v2/auth proves nothing either
        wrong = await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": "guess"})
        assert wrong.json["code"] == 10
    nonce = secrets.token_hex(16)
    assert (await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": "demo-secret"}, nonce=nonce)).json["code"] == 0
    h.xpro.token = (await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": "demo-secret"})).json["data"][
        "accessToken"
    ]
    assert (await h.xpro.create_member("player001")).json["code"] == 0
    deposit = h.xpro.prepare("/v2/members/transaction", {"username": "player001", "amount": 5, "transId": "T-1"})
    assert (await h.xpro.send(deposit)).json["code"] == 0
    # replays of proven requests stay refused, the auth and the transaction alike
    replayed_auth = await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": "demo-secret"}, nonce=nonce)
    assert replayed_auth.json["code"] == 83 and "replay" in replayed_auth.headers["X-Sim-Detail"]
    replayed = await h.xpro.send(deposit)
    assert replayed.json["code"] == 83 and "replay" in replayed.headers["X-Sim-Detail"]
    assert (await h.xpro.balance("player001")).json["data"]["balance"] == 5
