"""Every dialect's documented wire codes, and the neutral vocabulary of PROTOCOLS.md section 4.

The tables themselves live in each provider's description (simulator/dialects/providers/); this module is
the view the scenario validator and the tests use, without importing any HTTP code. Each dialect's request
handler holds its one table from domain error to these codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.dialects import registry
from simulator.dialects.providers import ambslot, fizzy, xpro

NEUTRAL_NAMES = (
    "insufficient_funds",
    "duplicate",
    "wallet_locked",
    "pending",
    "timeout",
    "unknown_player",
    "bad_request",
    "auth_failed",
    "internal_error",
)

XPRO = xpro.CODES
FIZZY = fizzy.CODES
AMBSLOT = ambslot.CODES


#: the built-in dialects' tables by name (code that may meet a registered dialect asks the registry)
CODES: dict[str, Mapping[Any, tuple[int, str]]] = {d.name: d.codes for d in registry.BUILTIN}
NEUTRAL: dict[str, Mapping[str, Any]] = {d.name: d.neutral for d in registry.BUILTIN}


def raw_code(dialect: str, value: Any) -> Any:
    """A scenario's ``code`` as the dialect's key (``"35"`` -> ``35`` for the numeric dialects), or None."""
    return registry.get(dialect).raw_code(value)
