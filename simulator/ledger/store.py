"""The interface between the ledger's rules and where transactions are kept.

:class:`~simulator.ledger.core.Ledger` decides (ids, balances, reversals, rounds, tombstones) and calls only
these methods to read and write transactions; :class:`~simulator.ledger.memory.MemoryStore` is the embedded
implementation. A shared store (for example Redis) fits behind the same methods by loading the working set
of one request (the player, the ids and the round it names), letting the same synchronous dialect logic run
against it, and committing the appended rows and marks atomically (WATCH/MULTI or a compare-and-set
script); a conflict retries the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from simulator.ledger.core import Player
    from simulator.ledger.memory import Transaction


class TransactionStore(Protocol):
    def clear(self) -> None:
        """Forget every transaction and player number."""

    def __len__(self) -> int:
        """Transactions kept."""

    def enrol(self, player: Player) -> None:
        """Give a new player its place (``player.no``) and an empty ``player.history``."""

    def log(self) -> Sequence[Transaction]:
        """Every transaction, oldest first."""

    def find(self, dialect: str, tenant: str, scope: str, txn_id: str) -> Transaction | None:
        """The indexed transaction with this id in this id space."""

    def round(self, player: Player, round_id: str) -> list[Transaction]:
        """The transactions posted with ``track_round`` on the player's round, oldest first."""

    def referring(self, txn: Transaction) -> list[Transaction]:
        """The transactions whose ``ref`` names ``txn``, oldest first."""

    def append(
        self,
        player: Player,
        txn_id: str,
        kind: str,
        scope: str,
        debit: Decimal,
        credit: Decimal,
        after: Decimal,
        now: float,
        *,
        round_id: str | None,
        game: str | None,
        ref: str | None,
        fingerprint: int | None,
        indexed: bool,
        track_round: bool,
    ) -> Transaction:
        """Record a transaction already checked by the ledger, and index it."""

    def mark_reversed(self, target: Transaction, by: Transaction, status: str) -> None:
        """``target``'s debit was refunded by ``by``; its status becomes ``status``."""


class Stands(Protocol):
    """What a lookup by id reads of a transaction (the scorecard: whose it is, and whether it stands)."""

    @property
    def player(self) -> str: ...

    @property
    def status(self) -> str: ...


class Books(Protocol):
    """The transactions looked up by id: the ledger, or a shared store's reader (what the scorecard judges
    with)."""

    def find(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Stands | None: ...
