"""Ledger core.

Atomicity: every check-and-apply runs inside :meth:`Ledger.atomic` (a re-entrant lock) and never awaits,
so concurrent requests on one event loop, or on several threads, can neither overdraw a balance nor
apply one transaction twice. Idempotency keys are ``(dialect, tenant, scope, transaction id)``; a key that
is still being processed is *claimed* (:meth:`Ledger.claim`) and a second request with it is refused as
pending.

The *scope* is the dialect's choice and the ledger gives it no meaning: ``""`` (the default) makes one id
space across every kind of transaction (XPro, Fizzy); a dialect whose ids are per operation (AMBSlot) passes
the operation. Admin adjustments live in :data:`ADJUSTMENTS`, a scope no dialect uses, so no client id can
ever meet one.

Tombstones record a reversal that found nothing to reverse (a rollback or cancel that arrived before the
transaction or round it names), so that the late arrival can be refused. They are kept in insertion order
up to ``max_tombstones``; past it the oldest is forgotten (and counted in ``tombstones_forgotten``).

Transactions are kept by a store (:mod:`simulator.ledger.store`, the embedded one in
:mod:`simulator.ledger.memory`): this module holds the rules, the store the rows. A :class:`Transaction` is a
light view on one row; two views of one transaction compare equal (use ``==``, not ``is``).

Retention, not refusal: at most ``max_transactions`` full rows are kept (and, if ``max_age`` is set, none
older than it); past either the oldest are dropped, a few per request, when the outermost atomic block ends
(so no view a request holds is ever dropped under it). The id of a dropped transaction is remembered as a
64-bit fingerprint (:class:`Remembered`) for ``id_retention`` seconds, at most ``max_remembered`` of them:
a retry of it is refused as a duplicate and never applied twice. The balance a dropped row moved is carried
on its player (``Player.carried``), so the books still add up. At most ``max_players`` players are kept;
past it a new one is refused with :class:`~simulator.errors.LedgerFull`.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simulator.config import DEFAULTS
from simulator.errors import DuplicateTransaction, InsufficientFunds, LedgerFull, PlayerExists, TransactionPending
from simulator.ledger.memory import MemoryStore, Transaction
from simulator.money import ZERO

PlayerKey = tuple[str, str, str]  # (dialect, tenant, player id)
TxnKey = tuple[str, str, str, str]  # (dialect, tenant, scope, transaction id)
StoneKey = tuple[str, ...]  # ("txn", dialect, tenant, scope, id) or ("round", dialect, tenant, player, round)

#: the scope of admin adjustments (``Ledger.set_balance``): not a name any dialect gives its operations
ADJUSTMENTS = "#adjust"

APPLIED = "applied"
ROLLED_BACK = "rolled_back"
CANCELLED = "cancelled"
REVERSALS = ("rollback", "cancel")


@dataclass(slots=True, eq=False)
class Player:
    dialect: str
    tenant: str
    id: str
    currency: str
    balance: Decimal
    opening: Decimal
    created: float
    updated: float
    locked: bool = False
    blocked: bool = False
    disabled: bool = False
    session_expired: bool = False
    reality_check: bool = False
    bet_limit: Decimal | None = None
    site_id: str | None = None
    sessions: dict[str, float] = field(default_factory=dict)  # session id -> first seen (epoch s)
    history: Sequence[Transaction] = ()  # the store gives it on open(): a view of ``rows``
    rows: array[int] = field(default_factory=lambda: array("Q"))  # the store's row numbers, oldest first
    no: int = -1  # the store's number for this player
    carried: Decimal = ZERO  # the net effect of its transactions dropped by retention

    @property
    def key(self) -> PlayerKey:
        return (self.dialect, self.tenant, self.id)

    def flags(self) -> dict[str, Any]:
        return {
            "locked": self.locked,
            "blocked": self.blocked,
            "disabled": self.disabled,
            "session_expired": self.session_expired,
            "reality_check": self.reality_check,
            "bet_limit": self.bet_limit,
        }


@dataclass(slots=True, eq=False)
class Tombstone:
    """A rollback or cancel that found nothing to reverse: the transaction id (``transaction``) or the
    player's round (``round``) it named is refused if it arrives later."""

    dialect: str
    tenant: str
    player: str
    transaction: str | None
    round: str | None
    scope: str
    by: str  # the id of the reversal that left it
    time: float
    refused: int = 0  # late arrivals refused under it (the dialects count them)
    seq: int = 0  # its place among the ledger's tombstones (1, 2, ...: newer ones higher; a paging cursor)


class _Atomic:
    """``Ledger.atomic()``: a class rather than a generator, as it wraps every request."""

    __slots__ = ("ledger", "outermost")

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.outermost = False

    def __enter__(self) -> None:
        ledger = self.ledger
        ledger._lock.acquire()
        if ledger._undo is None:  # nested blocks share the outermost block's undo log
            self.outermost = True
            ledger._undo = []

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        ledger = self.ledger
        try:
            if self.outermost:
                undo, ledger._undo = ledger._undo or [], None
                if kind is not None:
                    for step in reversed(undo):
                        step()
                ledger.retain()  # no view of this block is used any more: the oldest rows may go
        finally:
            ledger._lock.release()


class _Claim:
    __slots__ = ("key", "ledger")

    def __init__(self, ledger: Ledger, key: TxnKey) -> None:
        self.ledger, self.key = ledger, key

    def __enter__(self) -> None:
        ledger = self.ledger
        with ledger._lock:
            if self.key in ledger._in_flight:
                raise TransactionPending(f"transaction {self.key[3]!r} is still being processed")
            ledger._in_flight.add(self.key)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        with self.ledger._lock:
            self.ledger._in_flight.discard(self.key)


_LIMITS = DEFAULTS["server"]  # the limits' defaults are the settings' (one place for defaults)
#: rows dropped at most per request beyond the excess over the count bound (age-based drops catch up)
DROP_BATCH = 64


def id_fingerprint(key: TxnKey) -> int:
    """A transaction id key as 64 bits (Python's string hash: salted per process, which is all an
    in-process memory needs; two ids share one with odds of 1 in 2**64 per pair)."""
    return hash(key)


class Remembered:
    """Fingerprints of dropped transaction ids, oldest first: a set to look up, and two columns (time,
    fingerprint; 16 bytes an id, no object each) to forget those past ``retention`` seconds or beyond
    ``limit`` entries. About 90 bytes per remembered id in all (docs/replicas.md)."""

    __slots__ = ("_fps", "_head", "_order", "_times", "forgotten", "limit", "retention")

    def __init__(self, retention: float, limit: int) -> None:
        self.retention, self.limit = retention, limit
        self._fps: set[int] = set()
        self._order = array("q")  # fingerprints, oldest first, from _head on
        self._times = array("d")
        self._head = 0
        self.forgotten = 0  # fingerprints forgotten (age or limit)

    def __len__(self) -> int:
        return len(self._fps)

    def __contains__(self, fp: int) -> bool:
        return fp in self._fps

    def add(self, fp: int, now: float) -> None:
        if self.limit <= 0:
            return
        if fp not in self._fps:
            self._fps.add(fp)
            self._order.append(fp)
            self._times.append(now)
        self.expire(now)

    def expire(self, now: float) -> None:
        order, times, cutoff = self._order, self._times, now - self.retention
        head = self._head
        while head < len(order) and (len(order) - head > self.limit or times[head] < cutoff):
            self._fps.discard(order[head])
            head += 1
            self.forgotten += 1
        if head >= 4096 and head * 2 >= len(order):  # cut the dead front: amortised, one memmove per half
            del order[:head]
            del times[:head]
            head = 0
        self._head = head


class Ledger:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        max_tombstones: int = _LIMITS["max_tombstones"],
        max_transactions: int = _LIMITS["max_transactions"],
        max_players: int = _LIMITS["max_players"],
        *,
        max_age: float = _LIMITS["transaction_retention"],
        id_retention: float = _LIMITS["id_retention"],
        max_remembered: int = _LIMITS["max_remembered_ids"],
    ) -> None:
        self.clock = clock
        self.max_tombstones = max_tombstones
        self.max_transactions = max_transactions
        self.max_players = max_players
        self.max_age = max_age  # seconds a full row is kept at most (0: no age bound)
        self.id_retention = id_retention
        self.max_remembered = max_remembered
        self.store = self._new_store()
        self._lock = threading.RLock()
        self._undo: list[Callable[[], object]] | None = None  # set inside the outermost atomic()
        self.reset()

    def _new_store(self) -> MemoryStore:
        """Where the transactions are kept (a working set of the shared store keeps its own kind)."""
        return MemoryStore()

    @property
    def log(self) -> Sequence[Transaction]:
        """Every transaction, oldest first."""
        return self.store.log()

    def reset(self) -> None:
        with self._lock:
            self.players: dict[PlayerKey, Player] = {}
            self.store.clear()
            self._tombstones: OrderedDict[StoneKey, Tombstone] = OrderedDict()  # O(1) eviction of the oldest
            self.tombstones_forgotten = 0
            self.tombstones_buried = 0  # tombstones ever left since the reset (the last one's seq)
            self.remembered = Remembered(self.id_retention, self.max_remembered)
            self.dropped = 0  # full rows dropped by retention
            self._in_flight: set[TxnKey] = set()
            self._sessions: dict[tuple[str, str, str], str] = {}  # (dialect, tenant, session) -> player id

    def atomic(self) -> _Atomic:
        """Checks and changes inside this block see and leave a consistent ledger, and a block that raises
        leaves nothing behind: players it created and sessions it bound are taken back (a refused request
        changes nothing). Transactions need no undo: ``post`` changes nothing until its checks have passed."""
        return _Atomic(self)

    def _on_failure(self, undo: Callable[[], object]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def retain(self) -> None:
        """Drop the oldest rows beyond ``max_transactions`` or older than ``max_age`` (a few per call, so no
        request pays for many), remembering their ids."""
        store = self.store
        excess = len(store) - self.max_transactions
        if excess <= 0 and self.max_age <= 0:
            return
        budget = max(excess, 0) + DROP_BATCH
        now = self.clock()
        cutoff = now - self.max_age if self.max_age > 0 else None
        while budget > 0 and len(store):
            if len(store) <= self.max_transactions:
                oldest = store.oldest_time()
                if cutoff is None or oldest is None or oldest >= cutoff:
                    break
            key, player, effect = store.drop_oldest()
            if key is not None:
                self.remembered.add(id_fingerprint(key), now)
            player.carried += effect
            self.dropped += 1
            budget -= 1
        if self.remembered:
            self.remembered.expire(now)

    def forgotten_id(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        """Whether this id belonged to a transaction dropped by retention (its fingerprint is remembered)."""
        return bool(self.remembered) and id_fingerprint((dialect, tenant, scope, txn_id)) in self.remembered

    def claim(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> _Claim:
        """Mark a transaction id as being processed; a second claim meanwhile raises TransactionPending."""
        return _Claim(self, (dialect, tenant, scope, txn_id))

    def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        return (dialect, tenant, scope, txn_id) in self._in_flight

    # players

    def player(self, dialect: str, tenant: str, player_id: str) -> Player | None:
        return self.players.get((dialect, tenant, player_id))

    def numbered(self, start: int = 0) -> Iterator[Player]:
        """The kept players in the order they were opened (``Player.no`` ascending), from number ``start`` on:
        a paging cursor is the number of the last player given, and players opened meanwhile come after."""
        owners = self.store.players
        for no in range(max(start, 0), len(owners)):
            owner = owners[no]
            player = self.players.get(owner.key)
            if player is owner:  # not discarded, nor a refused creation
                yield player

    def open(self, dialect: str, tenant: str, player_id: str, currency: str, balance: Decimal, **flags: Any) -> Player:
        """Create a player; an existing one raises PlayerExists."""
        with self._lock:
            key = (dialect, tenant, player_id)
            if key in self.players:
                raise PlayerExists(f"player {player_id!r} already exists")
            if len(self.players) >= self.max_players:
                raise LedgerFull(
                    f"the ledger holds max_players ({self.max_players:,}) players: "
                    "POST /_sim/reset, or raise server.max_players"
                )
            now = self.clock()
            player = Player(dialect, tenant, player_id, currency, balance, balance, now, now)
            for name, value in flags.items():
                setattr(player, name, value)
            self.store.enrol(player)
            self.players[key] = player

            def undo() -> None:
                self.players.pop(key, None)
                self.store.unenrol(player)

            self._on_failure(undo)
            return player

    def set_balance(self, player: Player, balance: Decimal, reason: str = "admin") -> Transaction | None:
        """Move a balance to an exact value with an ``adjust`` transaction, so the books still add up. Its id
        lives in the :data:`ADJUSTMENTS` scope, so it never meets (nor hides) a client's transaction id."""
        with self.atomic():
            delta = balance - player.balance
            if delta == 0:
                return None
            debit, credit = (-delta, ZERO) if delta < 0 else (ZERO, delta)
            txn_id = f"{reason}-{self.store.next_row + 1}"  # the seq it gets
            return self._record(player, txn_id, "adjust", ADJUSTMENTS, debit, credit, indexed=False)

    def discard(self, player: Player) -> None:
        """Forget a player that has no transactions, with its sessions (a scenario file redefining it)."""
        with self._lock:
            if player.rows:
                raise ValueError(f"player {player.id!r} has transactions")
            self.players.pop(player.key, None)
            self.store.unenrol(player)
            for session_id in player.sessions:
                self._sessions.pop((player.dialect, player.tenant, session_id), None)

    def unbind_session(self, dialect: str, tenant: str, session_id: str) -> None:
        """Free a session from whichever player it was bound to."""
        with self._lock:
            owner = self._sessions.pop((dialect, tenant, session_id), None)
            player = self.players.get((dialect, tenant, owner)) if owner is not None else None
            if player is not None:
                player.sessions.pop(session_id, None)

    def bind_session(self, player: Player, session_id: str, create: bool = True) -> str | None:
        """The player a session belongs to, binding it to ``player`` on first sight when ``create``."""
        with self._lock:
            key = (player.dialect, player.tenant, session_id)
            owner = self._sessions.get(key)
            if owner is None and session_id in player.sessions:
                owner = self._sessions[key] = player.id
            if owner is None and create:
                owner = self._sessions[key] = player.id
                player.sessions[session_id] = self.clock()

                def unbind() -> None:
                    self._sessions.pop(key, None)
                    player.sessions.pop(session_id, None)

                self._on_failure(unbind)
            return owner

    # transactions

    def find(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Transaction | None:
        return self.store.find(dialect, tenant, scope, txn_id)

    def round(self, player: Player, round_id: str) -> list[Transaction]:
        """Transactions posted with ``track_round`` for this player's round."""
        return self.store.round(player, round_id)

    def referring(self, txn: Transaction) -> list[Transaction]:
        """Transactions whose ``ref`` names ``txn`` (deposits and rollbacks of a withdraw), in its scope."""
        return self.store.referring(txn)

    def post(
        self,
        player: Player,
        txn_id: str,
        kind: str,
        *,
        scope: str = "",
        debit: Decimal = ZERO,
        credit: Decimal = ZERO,
        round_id: str | None = None,
        game: str | None = None,
        ref: str | None = None,
        fingerprint: int | None = None,
        track_round: bool = False,
    ) -> Transaction:
        """The one check-and-apply: refuse a used id or a debit beyond the balance, else apply both legs."""
        assert scope != ADJUSTMENTS, "the adjustment scope is the ledger's own"
        with self.atomic():
            if self.store.find_row(player.dialect, player.tenant, scope, txn_id) is not None:
                raise DuplicateTransaction(f"transaction {txn_id!r} already exists")
            if self.forgotten_id(player.dialect, player.tenant, txn_id, scope):
                raise DuplicateTransaction(f"transaction {txn_id!r} already exists (an older one, no longer kept)")
            if debit > player.balance:
                raise InsufficientFunds(f"debit {debit} exceeds balance {player.balance}")
            return self._record(
                player, txn_id, kind, scope, debit, credit, round_id, game, ref, fingerprint, track_round
            )

    def reverse(
        self,
        player: Player,
        txn_id: str,
        kind: str,
        targets: list[Transaction],
        *,
        status: str,
        scope: str = "",
        round_id: str | None = None,
        game: str | None = None,
        ref: str | None = None,
        fingerprint: int | None = None,
        track_round: bool = False,
    ) -> Transaction:
        """Refund the stored debits of ``targets`` not yet reversed, and mark them ``status``; targets
        already reversed contribute nothing, so a second reversal changes no balance."""
        with self.atomic():  # the targets' views stay valid until the reversal is recorded
            live = [t for t in targets if t.reversed_by is None]
            refund = sum((t.debit for t in live), ZERO)
            txn = self.post(
                player,
                txn_id,
                kind,
                scope=scope,
                credit=refund,
                round_id=round_id,
                game=game,
                ref=ref,
                fingerprint=fingerprint,
                track_round=track_round,
            )
            for target in live:
                self.store.mark_reversed(target, txn, status)
            return txn

    def _record(
        self,
        player: Player,
        txn_id: str,
        kind: str,
        scope: str,
        debit: Decimal,
        credit: Decimal,
        round_id: str | None = None,
        game: str | None = None,
        ref: str | None = None,
        fingerprint: int | None = None,
        track_round: bool = False,
        indexed: bool = True,
    ) -> Transaction:
        now = self.clock()
        if debit or credit:
            player.balance = player.balance - debit + credit
        player.updated = now
        return self.store.append(
            player,
            txn_id,
            kind,
            scope,
            debit,
            credit,
            player.balance,
            now,
            round_id=round_id,
            game=game,
            ref=ref,
            fingerprint=fingerprint,
            indexed=indexed,
            track_round=track_round,
        )

    # tombstones

    def bury_transaction(
        self, dialect: str, tenant: str, player_id: str, txn_id: str, *, by: str, scope: str = ""
    ) -> Tombstone:
        """Remember that ``txn_id`` was reversed before it arrived (the first stone is kept)."""
        return self._bury(("txn", dialect, tenant, scope, txn_id), dialect, tenant, player_id, txn_id, None, scope, by)

    def bury_round(self, player: Player, round_id: str, *, by: str) -> Tombstone:
        """Remember that the player's round was cancelled before any debit on it arrived."""
        key = ("round", player.dialect, player.tenant, player.id, round_id)
        return self._bury(key, player.dialect, player.tenant, player.id, None, round_id, "", by)

    def transaction_tombstone(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Tombstone | None:
        """The stone naming this id; the caller counts the late arrival it refuses (a change of state)."""
        return self._tombstones.get(("txn", dialect, tenant, scope, txn_id))

    def round_tombstone(self, player: Player, round_id: str) -> Tombstone | None:
        return self._tombstones.get(("round", player.dialect, player.tenant, player.id, round_id))

    def tombstones(self) -> list[Tombstone]:
        """Every kept tombstone, newest first."""
        with self._lock:
            return list(reversed(self._tombstones.values()))

    def _bury(
        self,
        key: StoneKey,
        dialect: str,
        tenant: str,
        player_id: str,
        txn_id: str | None,
        round_id: str | None,
        scope: str,
        by: str,
    ) -> Tombstone:
        """Not taken back by a failing atomic block: the rollback that leaves it is itself refused."""
        with self._lock:
            stone = self._tombstones.get(key)
            if stone is not None:
                return stone
            self.tombstones_buried += 1
            stone = Tombstone(
                dialect, tenant, player_id, txn_id, round_id, scope, by, self.clock(), seq=self.tombstones_buried
            )
            if self.max_tombstones > 0:
                self._tombstones[key] = stone
                while len(self._tombstones) > self.max_tombstones:
                    self._tombstones.popitem(last=False)
                    self.tombstones_forgotten += 1
            return stone

    # self-check

    def invariants(self) -> dict[str, Any]:
        """Every balance equals its opening plus its applied transactions, none is negative, no
        transaction id is applied twice in its scope, no debit is refunded twice nor refunded and paid, no
        tracked round is debited twice and no debit was applied under a tombstone."""
        with self._lock:
            problems = (
                self._balance_problems()
                + self._transaction_problems()
                + self._round_problems()
                + self._tombstone_problems()
            )
            return {
                "ok": not problems,
                "players": len(self.players),
                "transactions": len(self.store),
                "dropped": self.dropped,
                "remembered_ids": len(self.remembered),
                "tombstones": len(self._tombstones),
                "problems": problems,
            }

    def _balance_problems(self) -> list[dict[str, Any]]:
        problems: list[dict[str, Any]] = []
        for player in self.players.values():
            implied = player.opening + player.carried + self.store.net(player)
            if implied != player.balance:
                problems.append(
                    {
                        "problem": "balance differs from its transactions",
                        "player": list(player.key),
                        "balance": player.balance,
                        "implied": implied,
                    }
                )
            if player.balance < 0:
                problems.append({"problem": "negative balance", "player": list(player.key), "balance": player.balance})
        return problems

    def _transaction_problems(self) -> list[dict[str, Any]]:
        store = self.store
        problems: list[dict[str, Any]] = [
            {"problem": "transaction applied twice", "transaction": list(key)} for key in store.repeated_ids()
        ]
        refunded: dict[int, Decimal] = {}  # reversal's row -> debits it marked as reversed
        for target, by in store.reversals():
            refunded[by.row] = refunded.get(by.row, ZERO) + target.debit
        for txn, target in store.references():
            if txn.kind not in REVERSALS and target.reversed_by is not None:
                problems.append(_paid_after_refund(target, txn))
        for row, amount in store.refunded_dropped.items():
            refunded[row] = refunded.get(row, ZERO) + amount
        for txn in store.of_kinds(REVERSALS):
            if txn.credit != refunded.get(txn.row, ZERO):
                problems.append(
                    {
                        "problem": "refund differs from the debits it reversed",
                        "transaction": [txn.dialect, txn.tenant, txn.scope, txn.id],
                        "refund": txn.credit,
                        "reversed": refunded.get(txn.row, ZERO),
                    }
                )
        return problems

    def _round_problems(self) -> list[dict[str, Any]]:
        """Rounds posted with ``track_round`` take one debit, and a refunded one is not paid as well."""
        problems: list[dict[str, Any]] = []
        for owner, found in self.store.tracked_rounds():
            if sum(1 for t in found if t.debit) > 1:
                where = {"player": list(owner.key), "round": found[0].round}
                problems.append({"problem": "round debited more than once", **where})
            refunded = next((t for t in found if t.reversed_by is not None), None)
            paid = next((t for t in found if t.credit and t.kind not in REVERSALS), None)
            if refunded is not None and paid is not None:
                problems.append(_paid_after_refund(refunded, paid))
        return problems

    def _tombstone_problems(self) -> list[dict[str, Any]]:
        problems: list[dict[str, Any]] = []
        for stone in self._tombstones.values():
            if stone.transaction is not None:
                found = self.find(stone.dialect, stone.tenant, stone.transaction, stone.scope)
                debits = [found] if found is not None and found.debit else []
            else:
                assert stone.round is not None
                player = self.players.get((stone.dialect, stone.tenant, stone.player))
                tracked = self.store.round(player, stone.round) if player is not None else []
                debits = [t for t in tracked if t.debit]
            for txn in debits:
                problems.append(
                    {
                        "problem": "debit applied under a tombstone",
                        "transaction": [txn.dialect, txn.tenant, txn.scope, txn.id],
                        "round": stone.round,
                        "by": stone.by,
                    }
                )
        return problems


def _paid_after_refund(refunded: Transaction, paid: Transaction) -> dict[str, Any]:
    return {
        "problem": "a refunded debit was also paid",
        "transaction": [refunded.dialect, refunded.tenant, refunded.scope, refunded.id],
        "refunded_by": refunded.reversed_by.id if refunded.reversed_by is not None else None,
        "paid_by": paid.id,
    }
