"""One exception tree for the whole simulator.

::

    SimulatorError
    ├── SourceError                  a config or scenario file is invalid (file, line, key)
    └── DomainError                  a request is refused; carries no HTTP status, each dialect maps it
        ├── AuthFailed               signature, timestamp, nonce, token (XPro 83, Fizzy 401, AMBSlot 998)
        │   └── UnknownAgent         agent/brand not configured or blocked, wrong secret
        ├── DecryptionFailed         XPro cipherText unusable (84)
        ├── BadRequest               a field is missing, ill-typed or out of range
        │   ├── CurrencyMismatch
        │   └── InvalidState         the request contradicts the ledger (deposit on a rolled-back bet, ...)
        ├── UnknownPlayer
        ├── PlayerExists
        ├── AccountDisabled          the account is disabled by the simulator's operator
        ├── WalletLocked             the wallet is locked (admin API or scenario)
        ├── PlayerBlocked            the player may not place bets
        ├── InvalidSession / SessionExpired
        ├── InsufficientFunds
        ├── LimitExceeded / RealityCheck / GameNotActive / InvalidGame
        ├── DuplicateTransaction     a transaction id is reused for a different request
        ├── DuplicateRound           a second bet on a round (AMBSlot)
        ├── TransactionPending       the same transaction id is still being processed
        ├── TransactionNotFound / WithdrawNotFound / RollbackTargetNotFound
        ├── Injected                 a scenario rule's ``respond``: a neutral name or a raw wire code
        └── InternalError            a bug in the simulator (logged with its traceback)
            └── LedgerFull           the ledger holds ``server.max_players`` players: reset it

Handlers never build error responses by hand: they raise, and the dialect renders through its one table.
"""

from __future__ import annotations

from typing import Any


class SimulatorError(Exception):
    """Base class of every error the simulator raises on purpose."""


class SourceError(SimulatorError):
    """An invalid configuration or scenario file, with every problem as ``file:line: key: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DomainError(SimulatorError):
    """A request the simulator refuses. ``detail`` explains why (journal, logs, ``X-Sim-Detail``)."""

    def __init__(self, detail: str = "", info: dict[str, Any] | None = None) -> None:
        self.detail = detail or self.__class__.__name__
        self.info = info  # structured diagnostics for the journal (e.g. what a signature was computed over)
        super().__init__(self.detail)


class AuthFailed(DomainError):
    pass


class UnknownAgent(AuthFailed):
    pass


class DecryptionFailed(DomainError):
    pass


class BadRequest(DomainError):
    pass


class CurrencyMismatch(BadRequest):
    pass


class InvalidState(BadRequest):
    pass


class UnknownPlayer(DomainError):
    pass


class PlayerExists(DomainError):
    pass


class AccountDisabled(DomainError):
    pass


class WalletLocked(DomainError):
    pass


class PlayerBlocked(DomainError):
    pass


class InvalidSession(DomainError):
    pass


class SessionExpired(DomainError):
    pass


class InsufficientFunds(DomainError):
    pass


class LimitExceeded(DomainError):
    pass


class RealityCheck(DomainError):
    pass


class GameNotActive(DomainError):
    pass


class InvalidGame(DomainError):
    pass


class DuplicateTransaction(DomainError):
    pass


class DuplicateRound(DomainError):
    pass


class TransactionPending(DomainError):
    pass


class TransactionNotFound(DomainError):
    pass


class WithdrawNotFound(DomainError):
    pass


class RollbackTargetNotFound(DomainError):
    pass


class Injected(DomainError):
    """A scenario's ``respond``: ``error`` is a neutral name or ``code`` a raw wire code (exactly one)."""

    def __init__(
        self,
        *,
        error: str | None = None,
        code: Any = None,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.error = error
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"injected {error or code}")


class InternalError(DomainError):
    """A bug in the simulator, answered as the dialect's internal error and logged with its traceback."""


class LedgerFull(InternalError):
    """The ledger holds ``server.max_players`` players: a request naming a new one is refused, nothing
    changes, and the detail says to reset (or raise the setting). Transactions never fill it: past
    ``server.max_transactions`` the oldest rows are dropped and their ids remembered (retention)."""
