"""The in-memory wallet: players, Decimal balances, transactions, idempotency and reversal.

Free of HTTP and of dialects: it raises :mod:`simulator.errors` domain errors and each dialect renders them.
"""

from simulator.ledger.core import ADJUSTMENTS, Ledger, Player, PlayerKey, Tombstone
from simulator.ledger.memory import Transaction

__all__ = ["ADJUSTMENTS", "Ledger", "Player", "PlayerKey", "Tombstone", "Transaction"]
