"""A ledger state machine through HTTP: deposits, withdrawals, cashouts, bets, wins, settles, cancels and
rollbacks, with repeats, one id sent to several operations, and rollbacks or cancels that arrive before what
they name, in any order Hypothesis finds. After every step the simulator's balances equal a simple model's and
the invariants of /_sim/invariants hold."""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulator import config
from simulator.dialects.client import AmbslotClient, FizzyClient, XproClient
from simulator.scenarios import loader
from simulator.testing import ServerThread
from tests.hostile import Wire, run_server

SCENARIO = """\
name: machine
players:
  - {dialect: xpro, username: player001, balance: "300.00"}
  - {dialect: fizzy, playerId: p-1, balance: "300.00"}
  - {dialect: ambslot, username: member001, balance: 300}
"""
CENTS = st.integers(min_value=1, max_value=25_000).map(lambda c: Decimal(c).scaleb(-2))
SERVER: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[None]:
    settings_ = config.build(None)
    for thread, wire in run_server(settings_, loader.parse(SCENARIO, "machine", settings_)):
        SERVER.update(thread=thread, wire=wire)
        yield
    SERVER.clear()


class Wallets(RuleBasedStateMachine):
    thread: ServerThread
    wire: Wire

    @initialize()
    def start(self) -> None:
        self.thread, self.wire = SERVER["thread"], SERVER["wire"]
        with urllib.request.urlopen(urllib.request.Request(self.thread.url + "/_sim/reset", method="POST")) as reply:
            assert reply.status == 200  # a domain command, run on the server's own loop
        self.xpro = XproClient(self.thread.url)
        self.fizzy = FizzyClient(self.thread.url)
        self.amb = AmbslotClient(self.thread.url)
        _, body = self.wire.send(self.xpro.prepare("/v2/auth", {"agentId": "demo", "secret": "demo-secret"}))
        self.xpro.token = body["data"]["accessToken"]
        self.model = {"xpro": Decimal(300), "fizzy": Decimal(300), "ambslot": Decimal(300)}
        self.xpro_done: list[tuple[str, dict[str, Any], Any]] = []  # (path, payload, answer)
        self.withdraws: dict[str, dict[str, Any]] = {}  # id -> {amount, deposited, rolled_back}
        self.rounds: dict[str, dict[str, Any]] = {}  # round -> {bet, paid, cancelled}
        self.replayable: list[tuple[str, str, dict[str, Any], Any]] = []  # (dialect, path, payload, answer)
        self.tombstoned: list[str] = []  # Fizzy withdraw ids rolled back before they arrived
        self.late_rounds: list[str] = []  # AMBSlot rounds cancelled before their bet arrived
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        """Deterministic ids (the simulator is reset per example), so Hypothesis can replay a failure."""
        return f"id{next(self._ids):05d}"

    def xcall(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        status, body = self.wire.send(self.xpro.prepare(path, payload))
        assert status == 200
        return dict(body)

    def call(self, client: Any, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        return self.wire.send(client.prepare(path, payload))

    # XPro

    @rule(amount=CENTS, withdraw=st.booleans())
    def xpro_transfer(self, amount: Decimal, withdraw: bool) -> None:
        signed = -amount if withdraw else amount
        payload = {"username": "player001", "amount": signed, "transId": self.next_id()}
        body = self.xcall("/v2/members/transaction", payload)
        if withdraw and amount > self.model["xpro"]:
            assert body["code"] == 2
            return
        assert body["code"] == 0
        self.model["xpro"] += signed
        assert body["data"] == {"amount": signed, "balance": self.model["xpro"]}
        self.xpro_done.append(("/v2/members/transaction", payload, body))

    @rule()
    def xpro_cashout(self) -> None:
        payload = {"username": "player001", "transId": self.next_id()}
        body = self.xcall("/v2/members/cashout", payload)
        if self.model["xpro"] == 0:
            assert body["code"] == 2
            return
        assert body["code"] == 0 and body["data"] == {"amount": self.model["xpro"], "balance": 0}
        self.model["xpro"] = Decimal(0)
        self.xpro_done.append(("/v2/members/cashout", payload, body))

    @precondition(lambda self: self.xpro_done)
    @rule(data=st.data())
    def xpro_repeat(self, data: st.DataObject) -> None:
        path, payload, first = data.draw(st.sampled_from(self.xpro_done))
        body = self.xcall(path, payload)
        if path.endswith("cashout"):
            assert body["code"] == 0 and body["data"] == first["data"]  # replayed
        else:
            assert body["code"] == 3

    # Fizzy

    @rule(amount=CENTS)
    def fizzy_withdraw(self, amount: Decimal) -> None:
        txn = self.next_id()
        payload = FizzyClient.money("p-1", amount, txn=txn, round_id=txn)
        status, body = self.call(self.fizzy, "/wallet/withdraw", payload)
        if amount > self.model["fizzy"]:
            assert status == 400 and body["code"] == "ERROR_TRANSACTION_INSUFFICIENT_FUNDS"
            return
        self.model["fizzy"] -= amount
        assert status == 200 and body["balance"] == self.model["fizzy"]
        self.withdraws[txn] = {"amount": amount, "deposited": False, "rolled_back": False, "payload": payload}
        self.replayable.append(("fizzy", "/wallet/withdraw", payload, body))

    @precondition(lambda self: self.withdraws)
    @rule(data=st.data(), amount=CENTS)
    def fizzy_deposit(self, data: st.DataObject, amount: Decimal) -> None:
        ref = data.draw(st.sampled_from(sorted(self.withdraws)))
        payload = {**FizzyClient.money("p-1", amount, txn=self.next_id(), round_id=ref), "withdrawTransactionId": ref}
        status, body = self.call(self.fizzy, "/wallet/deposit", payload)
        if self.withdraws[ref]["rolled_back"]:
            assert status == 400 and body["code"] == "ERROR_BAD_REQUEST"
            return
        self.model["fizzy"] += amount
        self.withdraws[ref]["deposited"] = True
        assert status == 200 and body["balance"] == self.model["fizzy"]
        self.replayable.append(("fizzy", "/wallet/deposit", payload, body))

    @precondition(lambda self: self.withdraws)
    @rule(data=st.data())
    def fizzy_rollback(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(sorted(self.withdraws)))
        state = self.withdraws[ref]
        payload = {"transactionId": self.next_id(), "withdrawTransactionId": ref, "playerId": "p-1",
                   "sessionId": "session-1", "gameId": "game-1", "gameRoundId": ref}  # fmt: skip
        status, body = self.call(self.fizzy, "/wallet/rollback", payload)
        if state["deposited"]:
            assert status == 400 and body["code"] == "ERROR_BAD_REQUEST"
            return
        if not state["rolled_back"]:
            self.model["fizzy"] += state["amount"]
            state["rolled_back"] = True
        assert status == 200 and body["balance"] == self.model["fizzy"]
        self.replayable.append(("fizzy", "/wallet/rollback", payload, body))

    # AMBSlot

    @rule(amount=CENTS)
    def amb_bet(self, amount: Decimal) -> None:
        round_id = self.next_id()
        payload = self.amb.fields("member001", round_id, amount)
        _, body = self.call(self.amb, "/bet", payload)
        if amount > self.model["ambslot"]:
            assert body["status"]["code"] == 800
            return
        before = self.model["ambslot"]
        self.model["ambslot"] -= amount
        assert body["data"]["balance"] == {"before": before, "after": self.model["ambslot"]}
        self.rounds[round_id] = {"bet": amount, "paid": False, "cancelled": False, "payload": payload, "reused": set()}
        self.replayable.append(("ambslot", "/bet", payload, body))

    @precondition(lambda self: self.rounds)
    @rule(data=st.data(), amount=CENTS)
    def amb_payout(self, data: st.DataObject, amount: Decimal) -> None:
        round_id = data.draw(st.sampled_from(sorted(self.rounds)))
        payload = self.amb.fields("member001", round_id, amount, turnover=self.rounds[round_id]["bet"])
        _, body = self.call(self.amb, "/payout", payload)
        if self.rounds[round_id]["cancelled"]:
            assert body["status"]["code"] == 997
            return
        self.model["ambslot"] += amount
        self.rounds[round_id]["paid"] = True
        assert body["status"]["code"] == 0 and body["data"]["wallet"]["balance"] == self.model["ambslot"]
        self.replayable.append(("ambslot", "/payout", payload, body))

    @rule(bet=CENTS, win=CENTS)
    def amb_settle(self, bet: Decimal, win: Decimal) -> None:
        round_id = self.next_id()
        payload = self.amb.fields("member001", round_id, win, bet=bet, winlose=win - bet, turnover=bet)
        _, body = self.call(self.amb, "/settle", payload)
        if bet > self.model["ambslot"]:
            assert body["status"]["code"] == 800
            return
        self.model["ambslot"] += win - bet
        self.rounds[round_id] = {"bet": bet, "paid": True, "cancelled": False, "payload": None, "reused": set()}
        assert body["status"]["code"] == 0 and body["data"]["wallet"]["balance"] == self.model["ambslot"]

    @precondition(lambda self: self.rounds)
    @rule(data=st.data())
    def amb_cancel(self, data: st.DataObject) -> None:
        round_id = data.draw(st.sampled_from(sorted(self.rounds)))
        state = self.rounds[round_id]
        payload = self.amb.fields("member001", round_id, 0)
        _, body = self.call(self.amb, "/cancel", payload)
        if state["paid"]:
            assert body["status"]["code"] == 997
            return
        if not state["cancelled"]:
            self.model["ambslot"] += state["bet"]
            state["cancelled"] = True
        assert body["status"]["code"] == 0 and body["data"]["wallet"]["balance"] == self.model["ambslot"]

    # one id, several operations

    @precondition(lambda self: self.withdraws)
    @rule(data=st.data(), path=st.sampled_from(["/wallet/deposit", "/wallet/rollback"]))
    def fizzy_withdraw_body_to_another_endpoint(self, data: st.DataObject, path: str) -> None:
        ref = data.draw(st.sampled_from(sorted(self.withdraws)))
        payload = {**self.withdraws[ref]["payload"], "withdrawTransactionId": ref}
        status, body = self.call(self.fizzy, path, payload)
        assert status == 400 and body["code"] == "ERROR_TRANSACTION_DUPLICATE"

    @precondition(lambda self: any(r["payload"] for r in self.rounds.values()))
    @rule(data=st.data(), path=st.sampled_from(["/cancel", "/payout"]))
    def amb_bet_id_to_another_operation(self, data: st.DataObject, path: str) -> None:
        """The bet's transactionId and fields sent to /cancel or /payout: processed as that operation."""
        round_id = data.draw(st.sampled_from(sorted(k for k, r in self.rounds.items() if r["payload"])))
        state = self.rounds[round_id]
        if path in state["reused"]:
            return  # a second time would be a replay: seamless_repeat covers those
        payload = {**state["payload"], "turnover": state["bet"]} if path == "/payout" else state["payload"]
        _, body = self.call(self.amb, path, payload)
        if state["paid" if path == "/cancel" else "cancelled"]:
            assert body["status"]["code"] == 997
            return
        if path == "/payout":
            self.model["ambslot"] += state["bet"]
            state["paid"] = True
        elif not state["cancelled"]:
            self.model["ambslot"] += state["bet"]
            state["cancelled"] = True
        state["reused"].add(path)
        assert body["status"]["code"] == 0 and body["data"]["wallet"]["balance"] == self.model["ambslot"]
        self.replayable.append(("ambslot", path, payload, body))

    # late arrivals: a rollback or cancel before what it names leaves a tombstone

    @rule()
    def fizzy_rollback_before_its_withdraw(self) -> None:
        ref = self.next_id()
        payload = {"transactionId": self.next_id(), "withdrawTransactionId": ref, "playerId": "p-1",
                   "sessionId": "session-1", "gameId": "game-1", "gameRoundId": ref}  # fmt: skip
        for _ in range(2):  # the retry is answered the same
            status, body = self.call(self.fizzy, "/wallet/rollback", payload)
            assert status == 400 and body["code"] == "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND"
        self.tombstoned.append(ref)

    @precondition(lambda self: self.tombstoned)
    @rule(data=st.data(), amount=CENTS)
    def fizzy_late_withdraw(self, data: st.DataObject, amount: Decimal) -> None:
        txn = data.draw(st.sampled_from(self.tombstoned))
        payload = FizzyClient.money("p-1", amount, txn=txn, round_id=txn)
        status, body = self.call(self.fizzy, "/wallet/withdraw", payload)
        assert status == 400 and body["code"] == "ERROR_BAD_REQUEST"

    @rule()
    def amb_cancel_before_its_bet(self) -> None:
        round_id = self.next_id()
        payload = self.amb.fields("member001", round_id, 0)
        _, body = self.call(self.amb, "/cancel", payload)
        balance = self.model["ambslot"]
        assert body["status"]["code"] == 0 and body["data"]["balance"] == {"before": balance, "after": balance}
        self.late_rounds.append(round_id)
        self.replayable.append(("ambslot", "/cancel", payload, body))

    @precondition(lambda self: self.late_rounds)
    @rule(data=st.data(), amount=CENTS, settle=st.booleans())
    def amb_late_bet(self, data: st.DataObject, amount: Decimal, settle: bool) -> None:
        round_id = data.draw(st.sampled_from(self.late_rounds))
        extra: dict[str, Any] = {"bet": amount, "winlose": -amount, "turnover": amount} if settle else {}
        payload = self.amb.fields("member001", round_id, 0 if settle else amount, **extra)
        _, body = self.call(self.amb, "/settle" if settle else "/bet", payload)
        assert body["status"]["code"] == 997

    # repeats of seamless requests replay and move nothing

    @precondition(lambda self: self.replayable)
    @rule(data=st.data())
    def seamless_repeat(self, data: st.DataObject) -> None:
        dialect, path, payload, first = data.draw(st.sampled_from(self.replayable))
        client = self.fizzy if dialect == "fizzy" else self.amb
        status, body = self.call(client, path, payload)
        assert status == 200 and body == first

    # invariants

    @invariant()
    def balances_match_the_model_and_the_books_add_up(self) -> None:
        if not hasattr(self, "model"):
            return
        ledger = self.thread.simulator.ledger
        with ledger.atomic():
            actual = {
                "xpro": ledger.player("xpro", "demo", "player001").balance,
                "fizzy": ledger.player("fizzy", "demo-public-key", "p-1").balance,
                "ambslot": ledger.player("ambslot", "demo", "member001").balance,
            }
            report = ledger.invariants()
        assert actual == self.model
        assert report["ok"], report


Wallets.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_wallets = Wallets.TestCase
