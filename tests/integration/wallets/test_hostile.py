"""Hostile input, property-based: every endpoint of every dialect, given random, malformed or damaged
requests, answers its dialect's documented error shape (never a 500, never a traceback) and leaves every
balance unchanged unless it answered success."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import config
from simulator.dialects import codes
from simulator.dialects.client import AmbslotClient, FizzyClient, XproClient
from simulator.scenarios import loader
from tests.hostile import Wire, damaged, run_server, values

SCENARIO = """\
name: hostile
players:
  - {dialect: xpro, username: player001, balance: "500.00"}
  - {dialect: fizzy, playerId: p-1, balance: "500.00"}
  - {dialect: ambslot, username: member001, balance: 500}
"""
# printable ASCII and the bytes 0x80-0xFF (sent as single bytes: header values that are not UTF-8)
HEADER_CHARS = st.characters(min_codepoint=32, max_codepoint=255).filter(lambda c: not 127 <= ord(c) < 160)
HYPOTHESIS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class World:
    def __init__(self, server: Any, wire: Wire) -> None:
        self.server, self.wire = server, wire
        self.xpro = XproClient(server.url)
        self.fizzy = FizzyClient(server.url)
        self.amb = AmbslotClient(server.url)
        _, body = wire.send(self.xpro.prepare("/v2/auth", {"agentId": "demo", "secret": "demo-secret"}))
        self.xpro.token = body["data"]["accessToken"]

    def books(self) -> tuple[Decimal, int]:
        ledger = self.server.simulator.ledger
        with ledger.atomic():
            return sum((p.balance for p in ledger.players.values()), Decimal(0)), len(ledger.log)

    def check(self, dialect: str, status: int, body: Any, before: tuple[Decimal, int]) -> None:
        assert status != 500, body
        ok = False
        if dialect == "xpro":
            assert status == 200 and isinstance(body, dict) and body["code"] in codes.XPRO, body
            ok = body["code"] == 0
        elif dialect == "fizzy":
            assert status in (200, 400, 401) and isinstance(body, dict), body
            if status != 200:
                assert set(body) == {"code", "description", "traceId"} and body["code"] in codes.FIZZY
            ok = status == 200
        else:
            assert status == 200 and isinstance(body, dict) and body["status"]["code"] in codes.AMBSLOT, body
            ok = body["status"]["code"] == 0
        if not ok:
            assert self.books() == before, f"a refused request changed the books: {body}"
        report = self.server.simulator.ledger.invariants()
        assert report["ok"], report
        self.journal_readable()

    def journal_readable(self) -> None:
        """Whatever was just recorded, the journal and verify still answer (issue 9 item 8)."""
        status, entries = self.wire.raw("GET", "/_sim/journal?limit=1", b"", {})
        assert status == 200 and isinstance(entries, list) and len(entries) == 1, entries
        verify = b'{"match": {"dialect": "xpro"}, "min": 0}'
        status, answer = self.wire.raw("POST", "/_sim/journal/verify", verify, {"Content-Type": "application/json"})
        assert status == 200, answer


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    settings_ = config.build({"server": {"max_body_bytes": 65536}})
    for server, wire in run_server(settings_, loader.parse(SCENARIO, "hostile", settings_)):
        yield World(server, wire)


XPRO_VALID: dict[str, dict[str, Any]] = {
    "/v2/auth": {"agentId": "demo", "secret": "demo-secret"},
    "/v2/members": {"username": "newplayer", "siteId": "s"},
    "/v2/members/balance": {"username": "player001"},
    "/v2/members/transaction": {"username": "player001", "amount": Decimal("-1.5"), "transId": "T"},
    "/v2/members/cashout": {"username": "player001", "transId": "C"},
    "/v2/members/check/transactions": {"username": "player001", "transId": "T"},
}
FIZZY_VALID: dict[str, dict[str, Any]] = {
    "/wallet/balance": {"playerId": "p-1", "sessionId": "s", "currency": "EUR"},
    "/wallet/withdraw": FizzyClient.money("p-1", "2.5", txn="w"),
    "/wallet/deposit": {**FizzyClient.money("p-1", "1", txn="d"), "withdrawTransactionId": "w"},
    "/wallet/rollback": {"transactionId": "r", "withdrawTransactionId": "w", "playerId": "p-1", "sessionId": "s",
                         "gameId": "g", "gameRoundId": "r1"},
}  # fmt: skip
AMB_CLIENT = AmbslotClient("http://x")
AMB_VALID: dict[str, dict[str, Any]] = {
    "/balance": {"username": "member001", "agentId": "demo"},
    "/bet": AMB_CLIENT.fields("member001", "R", 5, txn="b"),
    "/payout": AMB_CLIENT.fields("member001", "R", 5, txn="p", turnover=Decimal(5)),
    "/settle": AMB_CLIENT.fields(
        "member001", "R2", 5, txn="s", bet=Decimal(1), winlose=Decimal(4), turnover=Decimal(1)
    ),
    "/cancel": AMB_CLIENT.fields("member001", "R", 0, txn="c"),
}


@pytest.mark.parametrize("path", list(XPRO_VALID))
@HYPOTHESIS
@given(data=st.data())
def test_xpro_damaged_plaintexts(world: World, path: str, data: st.DataObject) -> None:
    body = data.draw(damaged(XPRO_VALID[path]))
    before = world.books()
    status, answer = world.wire.send(world.xpro.prepare(path, body))
    world.check("xpro", status, answer, before)


@pytest.mark.parametrize("path", list(XPRO_VALID))
@HYPOTHESIS
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-agentid", "x-timestamp", "x-nonce", "x-signature", "Authorization", "Content-Type"]),
        st.text(alphabet=HEADER_CHARS, max_size=80),
        max_size=6,
    ),
    body=st.one_of(st.binary(max_size=300), values.map(lambda v: str(v).encode("utf-8", "surrogatepass"))),
)
def test_xpro_hostile_headers_and_envelopes(world: World, path: str, headers: dict[str, str], body: bytes) -> None:
    prepared = world.xpro.prepare(path, XPRO_VALID[path])
    prepared.headers.update(headers)
    prepared.body = body if body else prepared.body
    before = world.books()
    status, answer = world.wire.send(prepared)
    world.check("xpro", status, answer, before)


@pytest.mark.parametrize("path", list(FIZZY_VALID))
@HYPOTHESIS
@given(data=st.data())
def test_fizzy_damaged_bodies(world: World, path: str, data: st.DataObject) -> None:
    body = data.draw(damaged(FIZZY_VALID[path]))
    before = world.books()
    status, answer = world.wire.send(world.fizzy.prepare(path, body))  # correctly signed: reaches validation
    world.check("fizzy", status, answer, before)


@pytest.mark.parametrize("path", list(FIZZY_VALID))
@HYPOTHESIS
@given(
    public_key=st.text(alphabet=HEADER_CHARS, max_size=40),
    signature=st.text(alphabet=HEADER_CHARS, max_size=80),
)
def test_fizzy_hostile_auth_headers(world: World, path: str, public_key: str, signature: str) -> None:
    prepared = world.fizzy.prepare(path, FIZZY_VALID[path])
    prepared.headers["Public-Key"], prepared.headers["Signature"] = public_key, signature
    before = world.books()
    status, answer = world.wire.send(prepared)
    assert status == 401
    world.check("fizzy", status, answer, before)


@pytest.mark.parametrize("path", list(AMB_VALID))
@HYPOTHESIS
@given(data=st.data())
def test_ambslot_damaged_bodies(world: World, path: str, data: st.DataObject) -> None:
    body = data.draw(damaged(AMB_VALID[path]))
    before = world.books()
    status, answer = world.wire.send(world.amb.prepare(path, body))
    world.check("ambslot", status, answer, before)


@pytest.mark.parametrize(
    ("path", "dialect"),
    [("/v2/members/transaction", "xpro"), ("/wallet/withdraw", "fizzy"), ("/bet", "ambslot")],
)
def test_bodies_over_the_size_limit(world: World, path: str, dialect: str) -> None:
    before = world.books()
    headers = {"Content-Type": "application/json", "Public-Key": "demo-public-key"}
    status, answer = world.wire.raw("POST", path, b'{"a":"' + b"z" * 70_000 + b'"}', headers)
    world.check(dialect, status, answer, before)
    assert status in (200, 400, 401)
