"""Fault follow-up judgement: after every ambiguous answer to a money-moving request, what did the client
do next with that transaction and player?

An answer is ambiguous when the client cannot know from it whether its money moved: a transport fault
(drop, reset, empty, malformed, gateway), an HTTP 5xx, the dialect's "pending / internal error" codes
(XPro 7 and 35, Fizzy ``ERROR_TIMEOUT`` and ``ERROR_UNKNOWN_ERROR``, AMBSlot 999 and 1600-1602), or an
answer slower than ``client_timeout`` (the client has most likely given up waiting).

The client's moves are that player's later requests (same dialect and tenant), in the order they began,
within ``window`` seconds of the faulty answer. The first decisive one gives the verdict:

- the same transaction again (same id and operation), a status question (XPro ``check/transactions``
  answered), or its reversal (a Fizzy rollback of that withdraw, an AMBSlot cancel of that round):
  ``recovered``;
- the same operation and amount under a new id (same round on the seamless wallets): ``double_spend``
  when both stand applied in the ledger, else ``unsafe_resend``;
- nothing decisive: ``abandoned`` when the transaction stands applied, else ``gave_up_cleanly``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from simulator.journal import Entry
from simulator.scorecard import model as m

AMBIGUOUS_CODES: dict[str, frozenset[Any]] = {
    "xpro": frozenset({7, 35}),
    "fizzy": frozenset({"ERROR_TIMEOUT", "ERROR_UNKNOWN_ERROR"}),
    "ambslot": frozenset({999, 1600, 1601, 1602}),
}
FAULTS = {
    "drop": "no answer (the connection was closed)",
    "reset": "a connection reset",
    "empty": "an empty 200 answer",
    "malformed": "a broken JSON answer",
    "gateway": "a 502 gateway page",
}
#: what a correct client does after an ambiguous answer, per dialect and operation
ADVICE = {
    "xpro": "ask /v2/members/check/transactions or retry with the same transId",
    "fizzy withdraw": "retry the same withdraw or roll it back",
    "fizzy": "retry with the same transactionId until it is answered",
    "ambslot bet": "retry the same bet or cancel the round",
    "ambslot settle": "retry the same settle or cancel the round",
    "ambslot": "retry with the same transactionId until it is answered",
}
APPLIED = "applied"
RECOVERY = {"retry": "retried it", "status": "asked for its status", "reversal": "reversed it"}


class Transactionish(Protocol):
    player: str
    status: str


class Books(Protocol):
    """The ledger's read API, as much of it as the judge needs."""

    def find(self, dialect: str, tenant: str, txn_id: str) -> Transactionish | None: ...


@dataclass(frozen=True)
class Rules:
    window: float
    client_timeout: float


def started(entry: Entry) -> float:
    op = entry.op
    if op is not None and "started" in op.params:
        return float(op.params["started"])
    return entry.time - entry.ms / 1000


def ambiguity(entry: Entry, client_timeout: float) -> str | None:
    """Why this answer leaves the client not knowing whether its money moved; None when it knows."""
    if entry.fault:
        return FAULTS.get(entry.fault, entry.fault)
    if entry.status >= 500:
        return f"HTTP {entry.status} {entry.code}"
    if entry.code in AMBIGUOUS_CODES.get(entry.dialect, ()):
        return f"code {entry.code}"
    took = max(entry.ms / 1000, entry.delay)
    if took >= client_timeout:
        return f"an answer after {took:.1f} s (past a {client_timeout:g} s client timeout)"
    return None


def answered(entry: Entry, client_timeout: float) -> bool:
    return ambiguity(entry, client_timeout) is None


def succeeded(entry: Entry) -> bool:
    return entry.fault is None and entry.status == 200 and entry.code in (0, None)


def judgeable(entry: Entry) -> bool:
    op = entry.op
    return op is not None and op.mutating and op.transaction is not None and op.player is not None


def judge(entries: list[Entry], books: Books, rules: Rules, now: float) -> list[m.Finding]:
    """One finding per ambiguous answer to a money-moving request in ``entries`` (oldest first)."""
    moves: dict[tuple[str, str | None, str | None], list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.op is not None and entry.op.player is not None:
            moves[(entry.dialect, entry.op.agent, entry.op.player)].append(entry)
    findings = []
    for entry in entries:
        if not judgeable(entry):
            continue
        cause = ambiguity(entry, rules.client_timeout)
        if cause is not None:
            player_moves = moves[(entry.dialect, entry.op.agent if entry.op else None, entry.player)]
            findings.append(_verdict(entry, cause, player_moves, books, rules, now))
    return findings


def _after(fault: Entry, moves: list[Entry], window: float) -> list[Entry]:
    """The client's moves after the fault began, within the window of its answer, in the order they began."""
    begin, horizon = started(fault), fault.time + window
    later = [e for e in moves if e is not fault and (started(e), e.seq) > (begin, fault.seq) and started(e) <= horizon]
    return sorted(later, key=lambda e: (started(e), e.seq))


def classify(fault: Entry, move: Entry, client_timeout: float) -> str | None:
    """``retry``, ``status``, ``reversal``, ``resend`` or None (not about this transaction)."""
    f, e = fault.op, move.op
    assert f is not None and e is not None
    same_round = fault.dialect == "xpro" or e.round == f.round
    if e.transaction == f.transaction and e.operation == f.operation:
        return "retry"
    if fault.dialect == "xpro":
        if e.operation == "check" and e.transaction == f.transaction and answered(move, client_timeout):
            return "status"
    elif fault.dialect == "fizzy":
        refers = e.params.get("withdraw_id")
        if f.operation == "withdraw" and refers == f.transaction:
            if e.operation == "rollback":
                return "reversal"
            if e.operation == "deposit" and succeeded(move):
                return "status"  # a deposit accepted against it proves the withdraw stands
        if f.operation == "rollback" and e.operation == "rollback" and refers == f.params.get("withdraw_id"):
            return "retry"  # another rollback of the same withdraw: the wallet refunds once
    elif f.operation in ("bet", "settle", "cancel") and e.operation == "cancel" and e.round == f.round:
        return "reversal" if f.operation != "cancel" else "retry"
    if e.mutating and e.operation == f.operation and e.amount == f.amount and same_round:
        return "resend"
    return None


def _verdict(fault: Entry, cause: str, moves: list[Entry], books: Books, rules: Rules, now: float) -> m.Finding:
    op = fault.op
    assert op is not None and op.transaction is not None and op.player is not None
    stands = _standing(books, op.dialect, op.agent, op.player)
    applied = stands(op.transaction)
    what = _describe(fault)
    head = f"{what} got {cause}"
    advice = ADVICE.get(f"{op.dialect} {op.operation}", ADVICE[op.dialect])
    extra: dict[str, Any] = {"cause": cause, "applied": applied}
    requests = [fault.seq]
    for move in _after(fault, moves, rules.window):
        kind = classify(fault, move, rules.client_timeout)
        if kind is None:
            continue
        requests.append(move.seq)
        extra["follow_up"] = kind
        if kind in RECOVERY:
            return _finding(fault, m.RECOVERED, f"{head}; the client {RECOVERY[kind]} (#{move.seq})", requests, extra)
        assert move.op is not None and move.op.transaction is not None
        again = f"sent it again as {move.op.transaction!r} (#{move.seq})"
        if applied and stands(move.op.transaction):
            text = f"{head}; it was applied, and the client {again}, which was applied too: the money moved twice"
            return _finding(fault, m.DOUBLE_SPEND, f"{text}. Instead: {advice}", requests, extra)
        outcome = (
            "it was applied and the wallet refused the resend"
            if applied
            else "it was not applied, so no harm this time"
        )
        text = f"{head}; the client {again} without asking: {outcome}. Instead: {advice}"
        return _finding(fault, m.UNSAFE_RESEND, text, requests, extra)
    open_for = fault.time + rules.window - now
    if open_for > 0:
        extra["window_open"] = round(open_for, 3)
    waited = f"no follow-up within {rules.window:g} s" + (" so far" if open_for > 0 else "")
    if applied:
        text = f"{head}; it was applied and the client never confirmed it ({waited}). Instead: {advice}"
        return _finding(fault, m.ABANDONED, text, requests, extra)
    text = f"{head}; it was not applied and the client did not retry it ({waited})"
    if op.operation in m.OWED.get(op.dialect, ()):
        text += f": the player is owed this money. Instead: {advice}"
    return _finding(fault, m.GAVE_UP_CLEANLY, text, requests, extra)


def _standing(books: Books, dialect: str, tenant: str | None, player: str) -> Callable[[str], bool]:
    """Whether a transaction id of this player stands applied in the ledger now (not rolled back)."""

    def stands(txn_id: str) -> bool:
        txn = books.find(dialect, tenant or "", txn_id)
        return txn is not None and txn.player == player and txn.status == APPLIED

    return stands


def _describe(entry: Entry) -> str:
    op = entry.op
    assert op is not None
    amount = f" of {_plain(op.amount)}" if op.amount is not None and op.operation != "cancel" else ""
    where = f" (round {op.round})" if op.round and entry.dialect != "xpro" else ""
    return f"#{entry.seq} {op.operation}{amount} {op.transaction!r}{where}"


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount == amount.to_integral() else str(amount)


def _finding(fault: Entry, verdict: str, message: str, requests: list[int], extra: dict[str, Any]) -> m.Finding:
    op = fault.op
    assert op is not None
    return m.Finding(
        id=f"fault-{fault.seq}",
        kind="fault",
        verdict=verdict,
        severity=m.verdict_severity(fault.dialect, op.operation, verdict),
        dialect=fault.dialect,
        message=message,
        requests=requests,
        tenant=op.agent,
        player=op.player,
        transaction=op.transaction,
        operation=op.operation,
        extra=extra,
    )
