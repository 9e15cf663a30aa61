"""The ledger alone: exact money, one check-and-apply, idempotency, reversal, claims and invariants."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from simulator.errors import DuplicateTransaction, InsufficientFunds, PlayerExists, TransactionPending
from simulator.ledger import Ledger, Player
from simulator.ledger.core import ROLLED_BACK

D = Decimal


def make(balance: str = "100") -> tuple[Ledger, Player]:
    ledger = Ledger(clock=lambda: 1_700_000_000.0)
    player = ledger.open("fizzy", "brand", "p1", "EUR", D(balance))
    return ledger, player


def test_post_applies_debit_and_credit_exactly() -> None:
    ledger, player = make("100.1")
    ledger.post(player, "w1", "withdraw", debit=D("0.2"))
    assert player.balance == D("99.9")
    txn = ledger.post(player, "s1", "settle", debit=D("10"), credit=D("2.5"))
    assert (txn.balance_before, txn.balance_after, txn.amount) == (D("99.9"), D("92.4"), D("-7.5"))


def test_overdraw_is_refused_and_changes_nothing() -> None:
    ledger, player = make("10")
    with pytest.raises(InsufficientFunds):
        ledger.post(player, "w1", "withdraw", debit=D("10.01"))
    assert player.balance == 10 and not ledger.log
    ledger.post(player, "w1", "withdraw", debit=D("10"))
    assert player.balance == 0


def test_settle_checks_the_debit_not_the_net() -> None:
    ledger, player = make("5")
    with pytest.raises(InsufficientFunds):  # net +95 but the stake alone is not covered
        ledger.post(player, "s1", "settle", debit=D("6"), credit=D("100"))
    assert player.balance == 5


def test_transaction_ids_are_unique_per_tenant() -> None:
    ledger, player = make()
    ledger.post(player, "t1", "withdraw", debit=D(1))
    with pytest.raises(DuplicateTransaction):
        ledger.post(player, "t1", "deposit", credit=D(1))
    other = ledger.open("fizzy", "other-brand", "p1", "EUR", D(10))
    ledger.post(other, "t1", "withdraw", debit=D(1))  # another tenant: its own id space
    assert ledger.invariants()["ok"]


def test_open_twice_is_refused() -> None:
    ledger, _ = make()
    with pytest.raises(PlayerExists):
        ledger.open("fizzy", "brand", "p1", "EUR", D(1))


def test_reverse_refunds_the_stored_debit_once() -> None:
    ledger, player = make("100")
    bet = ledger.post(player, "w1", "withdraw", debit=D("30"))
    first = ledger.reverse(player, "r1", "rollback", [bet], status=ROLLED_BACK, ref="w1")
    second = ledger.reverse(player, "r2", "rollback", [bet], status=ROLLED_BACK, ref="w1")
    assert (first.credit, second.credit) == (D(30), D(0))
    assert bet.status == ROLLED_BACK and bet.reversed_by == "r1"
    assert player.balance == 100 and ledger.invariants()["ok"]


def test_claim_refuses_a_second_holder_until_released() -> None:
    ledger, _ = make()
    with ledger.claim("xpro", "demo", "T1"):
        with pytest.raises(TransactionPending), ledger.claim("xpro", "demo", "T1"):
            pass
        with ledger.claim("xpro", "demo", "T2"):
            pass
    with ledger.claim("xpro", "demo", "T1"):
        pass


def test_set_balance_keeps_the_books_consistent() -> None:
    ledger, player = make("10")
    ledger.set_balance(player, D("2.50"))
    ledger.set_balance(player, D("40"))
    assert player.balance == 40 and [t.kind for t in ledger.log] == ["adjust", "adjust"]
    assert ledger.invariants()["ok"]


def test_invariants_catch_a_corrupted_balance_and_a_double_refund() -> None:
    ledger, player = make("10")
    bet = ledger.post(player, "w1", "withdraw", debit=D(4))
    player.balance += 1
    report = ledger.invariants()
    assert not report["ok"] and report["problems"][0]["problem"] == "balance differs from its transactions"
    player.balance -= 1
    refund = ledger.reverse(player, "r1", "rollback", [bet], status=ROLLED_BACK)
    refund.credit += 4  # as if the refund had been paid twice
    problems = {p["problem"] for p in ledger.invariants()["problems"]}
    assert "refund differs from the debits it reversed" in problems


def test_threads_hammering_one_balance_never_overdraw() -> None:
    ledger, player = make("500")
    results: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(50):
            try:
                ledger.post(player, f"{n}-{i}", "withdraw", debit=D("1"))
                ok = True
            except InsufficientFunds:
                ok = False
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 500 and player.balance == 0
    assert ledger.invariants()["ok"]


def test_reset_forgets_everything() -> None:
    ledger, player = make()
    ledger.post(player, "t", "withdraw", debit=D(1))
    ledger.reset()
    assert not ledger.players and not ledger.log and ledger.find("fizzy", "brand", "t") is None


def test_a_failed_atomic_block_takes_back_players_and_sessions() -> None:
    ledger, player = make("5")
    with pytest.raises(InsufficientFunds), ledger.atomic():
        newcomer = ledger.open("fizzy", "brand", "p2", "EUR", D(1))
        ledger.bind_session(newcomer, "s-new")
        ledger.bind_session(player, "s-old")
        ledger.post(player, "w", "withdraw", debit=D(6))
    assert ledger.player("fizzy", "brand", "p2") is None and "s-old" not in player.sessions
    assert ledger.bind_session(player, "s-new", create=False) is None
    with ledger.atomic():
        ledger.bind_session(player, "s-old")
    assert "s-old" in player.sessions  # a block that succeeds keeps what it did
