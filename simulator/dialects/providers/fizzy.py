"""Fizzy Bubbly as data: its operations, wire codes and habits (the request handler: simulator/dialects/fizzy.py)."""

from __future__ import annotations

from typing import Any

from simulator.dialects.description import HIDDEN, Description

# Fizzy Bubbly: {"code", "description", "traceId"} with the HTTP status of the provider's page.
CODES: dict[Any, tuple[int, str]] = {
    "ERROR_UNKNOWN_ERROR": (500, "Unknown error"),
    "ERROR_BAD_REQUEST": (400, "Bad request"),
    "ERROR_BAD_REQUEST_PLAYER_BLOCKED": (400, "Player is blocked"),
    "ERROR_INVALID_SESSION": (400, "Invalid session"),
    "ERROR_SESSION_EXPIRED": (400, "Session expired"),
    "ERROR_TRANSACTION_DUPLICATE": (400, "Duplicate transaction"),
    "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND": (400, "Withdraw transaction not found"),
    "ERROR_TRANSACTION_INSUFFICIENT_FUNDS": (400, "Insufficient funds"),
    "ERROR_TRANSACTION_LIMIT_EXCEEDED": (400, "Bet limit exceeded"),
    "ERROR_TRANSACTION_REALITY_CHECK": (400, "Reality check"),
    "ERROR_TRANSACTION_NOT_FOUND": (400, "Transaction not found"),
    "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND": (400, "Rollback transaction not found"),
    "ERROR_GAME_NOT_ACTIVE": (400, "Game is not active"),
    "ERROR_INVALID_SIGNATURE": (401, "Invalid signature"),
    "ERROR_TIMEOUT": (500, "Timeout"),
}

NEUTRAL: dict[str, Any] = {
    "insufficient_funds": "ERROR_TRANSACTION_INSUFFICIENT_FUNDS",
    "duplicate": "ERROR_TRANSACTION_DUPLICATE",
    "wallet_locked": "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
    "pending": "ERROR_TIMEOUT",
    "timeout": "ERROR_TIMEOUT",
    "unknown_player": "ERROR_BAD_REQUEST",
    "bad_request": "ERROR_BAD_REQUEST",
    "auth_failed": "ERROR_INVALID_SIGNATURE",
    "internal_error": "ERROR_UNKNOWN_ERROR",
}

DESCRIPTION = Description(
    name="fizzy",
    title="Fizzy Bubbly",
    codec="simulator.dialects.fizzy:Fizzy",
    operations=frozenset({"balance", "withdraw", "deposit", "rollback"}),
    codes=CODES,
    neutral=NEUTRAL,
    tenant_key="public_key",
    player_key="playerId",
    amount_fields=("amount", "cashAmount", "jackpotAmount"),
    ambiguous=frozenset({"ERROR_TIMEOUT", "ERROR_UNKNOWN_ERROR"}),
    advice={
        "withdraw": "retry the same withdraw or roll it back",
        "": "retry with the same transactionId until it is answered",
        HIDDEN: "retry with the same transactionId or read the balance before sending the money again",
    },
    owed=frozenset({"deposit", "rollback"}),
    max_decimals=lambda settings: int(settings.fizzy.max_decimals),
)
