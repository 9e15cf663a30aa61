"""AMBSlot as data: its operations, wire codes and habits (the request handler: simulator/dialects/ambslot.py)."""

from __future__ import annotations

from typing import Any

from simulator.dialects.description import HIDDEN, Description

# AMBSlot: HTTP 200 and {"status": {"code", "message"}}. 1600 and 1602 have no documented message.
CODES: dict[Any, tuple[int, str]] = {
    0: (200, "Success"),
    607: (200, "Bet failed"),
    800: (200, "Balance insufficient"),
    900: (200, "Duplicate round id"),
    908: (200, "Invalid username or token"),
    995: (200, "Invalid game id"),
    997: (200, "Invalid request data"),
    998: (200, "Invalid agent id"),
    999: (200, "Service not available"),
    1600: (200, "Request error"),
    1601: (200, "Response error via axios timeout"),
    1602: (200, "Response error"),
}

NEUTRAL: dict[str, Any] = {
    "insufficient_funds": 800,
    "duplicate": 900,
    "wallet_locked": 999,
    "pending": 1601,
    "timeout": 1601,
    "unknown_player": 908,
    "bad_request": 997,
    "auth_failed": 998,
    "internal_error": 999,
}

DESCRIPTION = Description(
    name="ambslot",
    title="AMBSlot",
    codec="simulator.dialects.ambslot:Ambslot",
    operations=frozenset({"balance", "bet", "payout", "settle", "cancel"}),
    codes=CODES,
    neutral=NEUTRAL,
    tenant_key="agent",
    player_key="username",
    amount_fields=("amount", "turnover", "bet", "winlose"),
    ambiguous=frozenset({999, 1600, 1601, 1602}),
    advice={
        "bet": "retry the same bet or cancel the round",
        "settle": "retry the same settle or cancel the round",
        "": "retry with the same transactionId until it is answered",
        HIDDEN: "retry with the same transactionId or read the balance before sending the money again",
    },
    owed=frozenset({"payout", "cancel"}),
    ids_shared_across_operations=True,  # a payout or cancel carries its bet's id
    max_decimals=lambda settings: int(settings.ambslot.max_decimals),
)
