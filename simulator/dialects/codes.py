"""Every dialect's documented wire codes, and the neutral vocabulary of PROTOCOLS.md section 4.

Kept apart from the dialect modules so that the scenario validator can check ``respond: {code: ...}``
without importing any HTTP code. Each dialect module holds its one table from domain error to these codes.
"""

from __future__ import annotations

from typing import Any

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

# XPro: HTTP 200 and {"code", "message"}; messages exactly as the provider writes them.
XPRO: dict[Any, tuple[int, str]] = {
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

# Fizzy Bubbly: {"code", "description", "traceId"} with the HTTP status of the provider's page.
FIZZY: dict[Any, tuple[int, str]] = {
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

# AMBSlot: HTTP 200 and {"status": {"code", "message"}}. 1600 and 1602 have no documented message.
AMBSLOT: dict[Any, tuple[int, str]] = {
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

CODES: dict[str, dict[Any, tuple[int, str]]] = {"xpro": XPRO, "fizzy": FIZZY, "ambslot": AMBSLOT}

NEUTRAL: dict[str, dict[str, Any]] = {
    "xpro": {
        "insufficient_funds": 2,
        "duplicate": 3,
        "wallet_locked": 20,
        "pending": 35,
        "timeout": 35,
        "unknown_player": 8,
        "bad_request": 11,
        "auth_failed": 83,
        "internal_error": 7,
    },
    "fizzy": {
        "insufficient_funds": "ERROR_TRANSACTION_INSUFFICIENT_FUNDS",
        "duplicate": "ERROR_TRANSACTION_DUPLICATE",
        "wallet_locked": "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
        "pending": "ERROR_TIMEOUT",
        "timeout": "ERROR_TIMEOUT",
        "unknown_player": "ERROR_BAD_REQUEST",
        "bad_request": "ERROR_BAD_REQUEST",
        "auth_failed": "ERROR_INVALID_SIGNATURE",
        "internal_error": "ERROR_UNKNOWN_ERROR",
    },
    "ambslot": {
        "insufficient_funds": 800,
        "duplicate": 900,
        "wallet_locked": 999,
        "pending": 1601,
        "timeout": 1601,
        "unknown_player": 908,
        "bad_request": 997,
        "auth_failed": 998,
        "internal_error": 999,
    },
}


def raw_code(dialect: str, value: Any) -> Any:
    """A scenario's ``code`` as the dialect's key (``"35"`` -> ``35`` for the numeric dialects), or None."""
    table = CODES[dialect]
    if value in table and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and int(value) in table:
        return int(value)
    return None
