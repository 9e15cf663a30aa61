"""XPro as data: its operations, wire codes and habits (the request handler: simulator/dialects/xpro.py)."""

from __future__ import annotations

from typing import Any

from simulator.dialects.description import HIDDEN, Description

# XPro: HTTP 200 and {"code", "message"}; messages exactly as the provider writes them.
CODES: dict[Any, tuple[int, str]] = {
    0: (200, "No error."),
    2: (200, "The balance is not enough."),
    3: (200, "The transaction already exist."),
    4: (200, "The transaction doesn't exist."),
    6: (200, "The username already exist."),
    7: (200, "Internal server error"),
    8: (200, "The User is not exist."),
    10: (200, "Agent code was not found or block"),
    11: (200, "Parameters error"),
    19: (200, "Invalid account"),
    20: (200, "Member wallet is temporarily locked"),
    35: (200, "The transaction is pending"),
    83: (200, "Signature verification failed"),
    84: (200, "Encryption failed"),
}

NEUTRAL: dict[str, Any] = {
    "insufficient_funds": 2,
    "duplicate": 3,
    "wallet_locked": 20,
    "pending": 35,
    "timeout": 35,
    "unknown_player": 8,
    "bad_request": 11,
    "auth_failed": 83,
    "internal_error": 7,
}

DESCRIPTION = Description(
    name="xpro",
    title="XPro",
    codec="simulator.dialects.xpro:Xpro",
    operations=frozenset({"auth", "create", "balance", "deposit", "withdraw", "cashout", "check"}),
    codes=CODES,
    neutral=NEUTRAL,
    tenant_key="agent",
    player_key="username",
    amount_fields=("amount",),
    ambiguous=frozenset({7, 35}),
    advice={
        "": "ask /v2/members/check/transactions or retry with the same transId",
        HIDDEN: "ask /v2/members/check/transactions (or read the balance) before sending the money again",
    },
    rounds=False,
    encrypted=True,
    status_operation="check",
)
