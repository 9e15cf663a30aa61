"""The wallet under test: settings from flags, environment variables (``CERTIFY_*``) and a YAML target file.

A flag beats the environment, which beats the file, which beats the defaults (``simulator.config.CERTIFY_DEFAULTS``).
Every mistake names where the value came from: ``--amount: ...``, ``CERTIFY_AMOUNT: ...`` or
``target.yaml:4: amount: ...`` (the file is validated like the rest of the project, with line numbers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from simulator.config import CERTIFY_DEFAULTS, yamlsrc
from simulator.errors import SourceError
from simulator.money import decimals, parse_amount

ENV_PREFIX = "CERTIFY_"
SECRETS = frozenset({"private_key"})

# key -> (dialects it belongs to, required)
KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "wallet_url": (("fizzy", "ambslot"), True),
    "currency": (("fizzy", "ambslot"), True),
    "public_key": (("fizzy",), True),
    "private_key": (("fizzy",), True),
    "player": (("fizzy",), True),
    "session": (("fizzy",), True),
    "blocked_player": (("fizzy",), False),
    "blocked_session": (("fizzy",), False),
    "agent": (("ambslot",), True),
    "username": (("ambslot",), True),
    "game": (("fizzy", "ambslot"), False),
    "amount": (("fizzy", "ambslot"), False),
    "timeout": (("fizzy", "ambslot"), False),
    "concurrency": (("fizzy", "ambslot"), False),
    "latency_budget": (("fizzy", "ambslot"), False),
    "max_body": (("fizzy", "ambslot"), False),
    "cancel_id": (("ambslot",), False),
    "settle": (("ambslot",), False),
}

_TEXT = {"type": "string", "minLength": 1}
_NUMBER = {"type": ["number", "string"]}
_TYPES: dict[str, dict[str, Any]] = {
    "wallet_url": {"type": "string", "pattern": "^https?://", "description": "an http:// or https:// URL"},
    "amount": _NUMBER,
    "timeout": {"type": "number", "exclusiveMinimum": 0},
    "concurrency": {"type": "integer", "minimum": 2, "maximum": 500},
    "latency_budget": {"type": "number", "exclusiveMinimum": 0},
    "max_body": {"type": "integer", "minimum": 1024},
    "cancel_id": {"enum": ["own", "bet"]},
    "settle": {"enum": ["yes", "no", True, False]},
}


def schema(dialect: str) -> dict[str, Any]:
    """JSON Schema of a target file for one dialect (``dialect:`` may repeat the command's)."""
    props: dict[str, Any] = {"dialect": {"enum": [dialect]}}
    for key, (dialects, _) in KEYS.items():
        if dialect in dialects:
            props[key] = _TYPES.get(key, _TEXT)
    return {"type": "object", "additionalProperties": False, "properties": props}


@dataclass(frozen=True)
class Target:
    dialect: str
    wallet_url: str
    currency: str
    game: str
    amount: Decimal
    timeout: float
    concurrency: int
    max_body: int = 1_048_576
    latency_budget: float | None = None  # seconds; None: the dialect's own limit (AMBSlot 5 s, Fizzy none)
    public_key: str = ""
    private_key: str = ""
    player: str = ""
    session: str = ""
    blocked_player: str | None = None
    blocked_session: str | None = None
    agent: str = ""
    username: str = ""
    cancel_id: str = "own"
    settle: bool = True

    @property
    def who(self) -> str:
        """The player under test, whatever the dialect calls it."""
        return self.player or self.username

    def shown(self) -> dict[str, Any]:
        """The target for reports: every setting, secrets redacted."""
        data: dict[str, Any] = {}
        for key, (dialects, _) in KEYS.items():
            if self.dialect in dialects:
                value = getattr(self, key)
                data[key] = "<redacted>" if key in SECRETS and value else value
        return data


def _url(value: Any) -> str:
    text = str(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return text


def _amount(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount <= 0 or decimals(amount) > 2:
        raise ValueError(f"{value!r} is not a positive amount with at most 2 decimal places")
    return amount


def _positive(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return number


def _concurrency(value: Any) -> int:
    number = int(value)
    if not 2 <= number <= 500:
        raise ValueError(f"{value} is not between 2 and 500")
    return number


def _max_body(value: Any) -> int:
    number = int(value)
    if number < 1024:
        raise ValueError(f"{value} is less than 1024 bytes")
    return number


def _cancel_id(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("own", "bet"):
        raise ValueError(f"{value!r} is not 'own' (the cancel's own transactionId) or 'bet' (the bet's)")
    return text


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("yes", "no", "true", "false"):
        raise ValueError(f"{value!r} is not yes or no")
    return text in ("yes", "true")


def _text(value: Any) -> str:
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


CONVERT: dict[str, Callable[[Any], Any]] = {
    "wallet_url": _url,
    "amount": _amount,
    "timeout": _positive,
    "latency_budget": _positive,
    "concurrency": _concurrency,
    "max_body": _max_body,
    "cancel_id": _cancel_id,
    "settle": _yes_no,
}


def read_file(
    path: str, dialect: str
) -> tuple[dict[str, Any], yamlsrc.SourceMap, list[tuple[int, list[str | int], str]]]:
    """The target file's settings, its source map and the schema's errors (``(line, key path, text)``): the
    caller checks every key the schema accepted in the same pass, so all mistakes come out at once."""
    data, source = yamlsrc.read(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SourceError([source.where([], "a target file is a mapping of settings (wallet_url:, currency:, ...)")])
    return data, source, yamlsrc.schema_errors(data, schema(dialect), source)


def resolve(
    dialect: str, flags: Mapping[str, Any], target_file: str | None, env: Mapping[str, str] | None = None
) -> Target:
    """Merge flags, environment and the target file into a :class:`Target`; SourceError lists every mistake
    in one pass: the file's schema errors, each value that does not convert, each required key missing."""
    env = os.environ if env is None else env
    data, source, errors = read_file(target_file, dialect) if target_file else ({}, None, [])
    refused = {str(path[0]) for _, path, _ in errors if path}
    found: list[tuple[int, str]] = [(line, text) for line, _, text in errors]  # (line, problem) in the file
    problems: list[str] = []  # from flags, the environment and what is missing: after the file's
    values: dict[str, Any] = {"dialect": dialect}
    for key, (dialects, required) in KEYS.items():
        if dialect not in dialects:
            continue
        flag, var = "--" + key.replace("_", "-"), ENV_PREFIX + key.upper()
        line = 0
        if flags.get(key) is not None:
            raw, origin = flags[key], f"{flag}: "
        elif env.get(var):
            raw, origin = env[var], f"{var}: "
        elif key in data and source is not None:
            if key in refused:
                continue  # the schema's error says why
            raw, origin, line = data[key], source.where([key], ""), source.line([key])
        elif key in CERTIFY_DEFAULTS:
            raw, origin = CERTIFY_DEFAULTS[key], "(default): "
        else:
            if required:
                problems.append(f"missing {key}: give {flag}, {var} or {key}: in the --target file")
            continue
        convert: Callable[[Any], Any] = CONVERT.get(key, _text)
        try:
            values[key] = convert(raw)
        except (ValueError, TypeError) as exc:
            if line:
                found.append((line, f"{origin}{exc}"))
            else:
                problems.append(f"{origin}{exc}")
    if found or problems:
        raise SourceError([text for _, text in sorted(found, key=lambda item: item[0])] + problems)
    return Target(**values)
