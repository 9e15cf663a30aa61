"""Fault follow-up judgement: after every ambiguous answer to a money-moving request, what did the client
do next with that transaction and player?

An answer is ambiguous when the client cannot know from it whether its money moved: a transport fault
(drop, reset, empty, malformed, gateway), an HTTP 5xx, the dialect's "pending / internal error" codes
(XPro 7 and 35, Fizzy ``ERROR_TIMEOUT`` and ``ERROR_UNKNOWN_ERROR``, AMBSlot 999 and 1600-1602), or an
answer slower than ``client_timeout`` (the client has most likely given up waiting). An answer *hides* its
money effect when a rule refused the transfer on the wire (``duplicate: true`` answering XPro 3,
``ERROR_TRANSACTION_DUPLICATE`` or AMBSlot 900; any ``respond``) while applying it (``apply: true``): it is
judged the same way, a balance call counts as checking, and a client that never checks only warns (it
believed a definite answer).

The client's moves are that player's later requests (same dialect and tenant), in the order they began,
within ``window`` seconds of the faulty answer. The first decisive one gives the verdict:

- the same transaction again (same id and operation), a status question (XPro ``check/transactions``
  answered; after a hidden effect also an answered balance call), or its reversal (a Fizzy rollback of
  that withdraw, an AMBSlot cancel of that round): ``recovered``;
- the same operation and amount under a new id (same round on the seamless wallets): ``double_spend``
  when both stand applied in the ledger, else ``unsafe_resend``;
- nothing decisive: ``abandoned`` when the transaction stands applied, else ``gave_up_cleanly``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.dialects import registry
from simulator.journal import Entry
from simulator.ledger.store import Books
from simulator.operations import RULE_APPLIED
from simulator.scorecard import model as m

FAULTS = {
    "drop": "no answer (the connection was closed)",
    "reset": "a connection reset",
    "empty": "an empty 200 answer",
    "malformed": "a broken JSON answer",
    "gateway": "a 502 gateway page",
}
APPLIED = "applied"
RECOVERY = {
    "retry": "retried it",
    "status": "asked for its status",
    "reversal": "reversed it",
    "balance": "checked the balance and did not send it again",
}


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
    if entry.code in registry.get(entry.dialect).ambiguous:
        return f"code {entry.code}"
    took = max(entry.ms / 1000, entry.delay)
    if took >= client_timeout:
        return f"an answer after {took:.1f} s (past a {client_timeout:g} s client timeout)"
    return None


def hidden(entry: Entry) -> str | None:
    """Why this answer misleads the client about its money: a rule refused the transfer on the wire while
    applying it (``apply: true``); None otherwise (an ambiguous answer is :func:`ambiguity`'s)."""
    op = entry.op
    if entry.rule is None or entry.fault or op is None or not op.params.get(RULE_APPLIED) or succeeded(entry):
        return None
    return f"an injected refusal (code {entry.code!r}, rule {entry.rule!r}) of a transfer the simulator applied"


def answered(entry: Entry, client_timeout: float) -> bool:
    return ambiguity(entry, client_timeout) is None


def succeeded(entry: Entry) -> bool:
    return entry.fault is None and entry.status == 200 and entry.code in (0, None)


def judgeable(entry: Entry) -> bool:
    op = entry.op
    return op is not None and op.mutating and op.transaction is not None and op.player is not None


def judge(entries: list[Entry], books: Books, rules: Rules, now: float) -> list[m.Finding]:
    """One finding per ambiguous answer to a money-moving request in ``entries`` (oldest first)."""
    found = []
    for entry in entries:
        if judgeable(entry):
            cause = ambiguity(entry, rules.client_timeout)
            misleading = None if cause is not None else hidden(entry)
            if cause is not None or misleading is not None:
                found.append((entry, cause or misleading or "", misleading is not None))
    moves = Moves(entries, {_player(entry) for entry, _, _ in found})
    return [_verdict(entry, cause, moves, books, rules, now, hid=hid) for entry, cause, hid in found]


def _player(entry: Entry) -> tuple[str, str | None, str | None]:
    return entry.dialect, entry.op.agent if entry.op else None, entry.player


Timed = tuple[float, int, Entry]  # (when it began, seq, entry)


def _order(item: Timed) -> tuple[float, int]:
    return item[0], item[1]


class Moves:
    """Every player's requests, indexed by what could make one a follow-up of a fault (its transaction id,
    the withdraw it refers to, the round it cancels, its operation and amount), each list in the order the
    requests began: finding a fault's follow-up is a bisection, not a scan of the player's history."""

    def __init__(self, entries: list[Entry], players: set[tuple[str, str | None, str | None]]) -> None:
        """Index the requests of ``players`` (those with a fault to judge)."""
        self._lists: dict[tuple[Any, ...], list[Timed]] = defaultdict(list)
        for e in entries:
            op = e.op
            if op is None or op.player is None or _player(e) not in players:
                continue
            item = (started(e), e.seq, e)
            for key in self._filed_under(e):
                self._lists[key].append(item)
        for items in self._lists.values():
            items.sort(key=_order)

    @staticmethod
    def _filed_under(e: Entry) -> list[tuple[Any, ...]]:
        """Where a request is filed: its transaction id, the withdraw it refers to, the round it cancels,
        and (if it moves money) its operation, amount and round."""
        op = e.op
        assert op is not None
        who = (e.dialect, op.agent, op.player)
        keys: list[tuple[Any, ...]] = [(*who, "txn", op.transaction)]
        if op.mutating:
            keys.append((*who, "same", op.operation, op.amount, op.round if registry.get(e.dialect).rounds else None))
        if "withdraw_id" in op.params:
            keys.append((*who, "ref", op.params["withdraw_id"]))
        if op.operation == "cancel":
            keys.append((*who, "cancel", op.round))
        if op.operation == "balance":
            keys.append((*who, "balance"))
        return keys

    @staticmethod
    def _looked_up(fault: Entry, balance: bool = False) -> list[tuple[Any, ...]]:
        """Where a fault's follow-ups are filed: under its id and its operation, amount and round (retries,
        status questions, resends), as a reference to it or to the withdraw it rolls back (Fizzy), as a
        cancel of its round (AMBSlot)."""
        op = fault.op
        assert op is not None
        who = (fault.dialect, op.agent, op.player)
        keys = [*Moves._filed_under(fault), (*who, "ref", op.transaction), (*who, "cancel", op.round)]
        if balance:  # the player's balance calls (after an answer that hid an applied transfer)
            keys.append((*who, "balance"))
        return list(dict.fromkeys(keys))

    def first(
        self, fault: Entry, window: float, decide: Callable[[Entry], str | None], *, balance: bool = False
    ) -> tuple[Entry, str] | None:
        """The first move that began after ``fault`` did, within ``window`` of its answer, that ``decide``
        gives a name; None when there is none. ``balance``: the player's balance calls are moves too."""
        begin, horizon = (started(fault), fault.seq), fault.time + window
        best: tuple[tuple[float, int], Entry, str] | None = None
        for key in self._looked_up(fault, balance):
            items = self._lists.get(key)
            if not items:
                continue
            for i in range(bisect.bisect_right(items, begin, key=_order), len(items)):
                at, seq, move = items[i]
                if at > horizon or (best is not None and (at, seq) >= best[0]):
                    break
                kind = decide(move)
                if kind is not None:
                    best = ((at, seq), move, kind)
                    break
        return (best[1], best[2]) if best else None


def classify(fault: Entry, move: Entry, client_timeout: float) -> str | None:
    """``retry``, ``status``, ``reversal``, ``balance``, ``resend`` or None (not about this transaction)."""
    f, e = fault.op, move.op
    assert f is not None and e is not None
    if e.operation == "balance":  # looked up only after an answer that hid an applied transfer
        return "balance" if succeeded(move) and answered(move, client_timeout) else None
    described = registry.get(fault.dialect)
    same_round = not described.rounds or e.round == f.round
    if e.transaction == f.transaction and e.operation == f.operation:
        return "retry"
    if described.status_operation is not None:
        if (
            e.operation == described.status_operation
            and e.transaction == f.transaction
            and answered(move, client_timeout)
        ):
            return "status"
    elif "withdraw_id" in e.params:  # a deposit or rollback naming its withdraw (Fizzy Bubbly)
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


def _verdict(
    fault: Entry, cause: str, moves: Moves, books: Books, rules: Rules, now: float, *, hid: bool = False
) -> m.Finding:
    op = fault.op
    assert op is not None and op.transaction is not None and op.player is not None
    stands = _standing(books, op.dialect, op.agent, op.player, op.scope)
    applied = stands(op.transaction)
    what = _describe(fault)
    head = f"{what} got {cause}"
    advice = registry.get(op.dialect).advice_for(op.operation, hidden=hid)
    extra: dict[str, Any] = {"cause": cause, "applied": applied}
    if hid:
        extra["hidden"] = True
    requests = [fault.seq]

    def decide(move: Entry) -> str | None:
        return classify(fault, move, rules.client_timeout)

    found = moves.first(fault, rules.window, decide)
    if found is None and hid:  # a balance check counts only when the money was not sent again after it
        found = moves.first(fault, rules.window, decide, balance=True)
    if found is not None:
        move, kind = found
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
    if op.operation in m.owed(op.dialect):
        text += f": the player is owed this money. Instead: {advice}"
    return _finding(fault, m.GAVE_UP_CLEANLY, text, requests, extra)


def _standing(books: Books, dialect: str, tenant: str | None, player: str, scope: str) -> Callable[[str], bool]:
    """Whether a transaction id of this player (in the operation's id space) stands applied in the ledger
    now, not rolled back or cancelled."""

    def stands(txn_id: str) -> bool:
        txn = books.find(dialect, tenant or "", txn_id, scope)
        return txn is not None and txn.player == player and txn.status == APPLIED

    return stands


def _describe(entry: Entry) -> str:
    op = entry.op
    assert op is not None
    amount = f" of {_plain(op.amount)}" if op.amount is not None and op.operation != "cancel" else ""
    where = f" (round {op.round})" if op.round and registry.get(entry.dialect).rounds else ""
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
        severity=m.verdict_severity(fault.dialect, op.operation, verdict, hidden=bool(extra.get("hidden"))),
        dialect=fault.dialect,
        message=message,
        requests=requests,
        tenant=op.agent,
        player=op.player,
        transaction=op.transaction,
        operation=op.operation,
        extra=extra,
    )
