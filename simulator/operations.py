"""The neutral request and outcome types shared by dialects, the scenario engine, the ledger and the journal.

A dialect decodes its wire request into an :class:`Operation` (neutral operation name, tenant, player,
transaction id, amount, ...); the scenario engine matches on it, never on raw bytes, so encrypted XPro
bodies match like plain ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simulator.errors import DomainError

OPERATIONS = (
    "auth",
    "create",
    "balance",
    "deposit",
    "withdraw",
    "cashout",
    "check",
    "rollback",
    "bet",
    "payout",
    "settle",
    "cancel",
)

#: status checks ask about money without moving it: a rule matches them only when it names them in
#: ``operation`` (or ``endpoint``), so a rule on a transaction id or a player leaves the way to ask alone
STATUS_CHECKS = frozenset({"balance", "check"})
#: ``Operation.params`` key set when a rule that replaced the answer (``duplicate``, ``respond``, ``fault``)
#: applied the transfer too (``apply: true``): the scorecard judges the answer that hid it
RULE_APPLIED = "rule_applied"


@dataclass(slots=True)
class Operation:
    dialect: str
    operation: str
    endpoint: str
    agent: str | None = None  # the tenant: XPro/AMBSlot agent, Fizzy brand public key
    player: str | None = None
    transaction: str | None = None
    scope: str = ""  # the id space of ``transaction`` in the ledger: "" for one per tenant, else the dialect's
    round: str | None = None
    game: str | None = None
    currency: str | None = None
    amount: Decimal | None = None  # the operation's amount as a magnitude (XPro withdrawals too)
    request: Any = None  # the decoded request body (for XPro the decrypted plaintext)
    params: dict[str, Any] = field(default_factory=dict)  # validated fields for the dialect's perform()
    mutating: bool = False  # moves money under a transaction id: claimed while in flight
    authenticated: bool = False  # the caller's credentials were verified (else the journal keeps no decoded body)


@dataclass(slots=True)
class Outcome:
    """What the pipeline decided: success data, a domain error, or a transport fault (plus the rule)."""

    data: dict[str, Any] | None = None
    error: DomainError | None = None
    fault: str | None = None
    rule: str | None = None
    delay: float = 0.0  # seconds of injected latency
