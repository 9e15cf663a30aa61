"""What a provider's wallet API is, as data: one :class:`Description` per dialect, registered once
(:mod:`simulator.dialects.registry`).

The scenario loader (operations, codes), the request handlers (the code table), the scorecard (ambiguous
codes, amounts, what the player is owed), the control API and its OpenAPI document (the dialect names) and
the code tables all read it, so none of them branches on a dialect's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the ``advice`` key for what to do after an answer that hid an applied transfer (no operation has this name)
HIDDEN = "#hidden"


@dataclass(frozen=True)
class Description:
    name: str  # the dialect's id in URLs, scenario files and the journal: "xpro"
    title: str  # for people: "XPro"
    codec: str  # "module:Class" of its request handler (a simulator.dialects.base.Dialect)
    #: the neutral operations its requests decode to (PROTOCOLS.md section 4)
    operations: frozenset[str]
    #: its documented wire codes: code -> (HTTP status, message)
    codes: Mapping[Any, tuple[int, str]]
    #: the neutral error names (PROTOCOLS.md section 4) -> its wire code
    neutral: Mapping[str, Any]
    tenant_key: str  # the key naming a tenant in scenario files and the control API: "agent", "public_key"
    player_key: str  # the key naming a player in scenario files: "username", "playerId"
    #: request fields that carry an amount (the scorecard checks their decimals)
    amount_fields: tuple[str, ...]
    #: codes after which the client cannot know whether the operation was applied
    ambiguous: frozenset[Any]
    #: what a correct client does after an ambiguous answer: by operation, "" for any other; under
    #: :data:`HIDDEN`, after an answer that refused a transfer a rule applied (``apply: true``)
    advice: Mapping[str, str]
    #: operations after which the player is owed money (giving up on an unapplied one leaves it unpaid)
    owed: frozenset[str] = frozenset()
    rounds: bool = True  # requests carry a round id
    encrypted: bool = False  # bodies are encrypted on the wire (the journal keeps the plaintext)
    status_operation: str | None = None  # the operation that asks for a transaction's status
    #: one transaction id may serve several operations (a payout carrying its bet's id): only noted
    ids_shared_across_operations: bool = False
    #: decimal places an amount may have, given the settings (a fixed number or the dialect's setting)
    max_decimals: Callable[[Any], int] = field(default=lambda settings: 2)

    def raw_code(self, value: Any) -> Any:
        """A scenario's ``code`` as this dialect's key (``"35"`` -> ``35`` for numeric codes), or None."""
        if value in self.codes and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit() and int(value) in self.codes:
            return int(value)
        return None

    def advice_for(self, operation: str | None, hidden: bool = False) -> str:
        if hidden and HIDDEN in self.advice:
            return self.advice[HIDDEN]
        return self.advice.get(operation or "", self.advice[""])
