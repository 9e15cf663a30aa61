"""Regression tests of issue 19 (hardening, round two), items 1, 2, 8, 9 and 10, through HTTP against a real
server: XPro agents cannot be locked out with junk nonces, stalled live-feed pages are dropped, rule patterns
run on a linear-time engine, the journal's byte bound holds for bodies of many small objects, and one peer
cannot take every connection."""

from __future__ import annotations

import contextlib
import secrets
import socket

import pytest

from simulator import config
from simulator.pytest_plugin import ServerThread
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


# item 10: one client address cannot take every connection


def _connect(server: ServerThread, source: str) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20, source_address=(source, 0))


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock.recv(65536)


def test_one_peer_gets_its_share_of_connections_and_others_still_get_in() -> None:
    server = ServerThread(config.from_dict({"server": {"max_connections": 8, "max_connections_per_peer": 3}}))
    server.start()
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.append(_connect(server, "127.0.0.1"))
            assert _health(held[-1]).startswith(b"HTTP/1.1 200")  # accepted before the next is judged
        for _ in range(5):  # the greedy peer is refused, however often it tries
            with _connect(server, "127.0.0.1") as extra:
                answer = _read_all(extra)
            assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
            assert b"max_connections_per_peer" in answer
        with _connect(server, "127.0.0.2") as other:  # another address still gets in
            assert _health(other).startswith(b"HTTP/1.1 200")
        held.pop().close()
        for _ in range(200):  # the freed slot is the greedy peer's again once the server saw the close
            with _connect(server, "127.0.0.1") as again, contextlib.suppress(ConnectionResetError):
                if _health(again).startswith(b"HTTP/1.1 200"):
                    break
        else:
            pytest.fail("a connection closed by the peer never gave its slot back")
    finally:
        for sock in held:
            sock.close()
        server.stop()
