"""Field validation shared by the dialects: a missing or ill-typed field is a BadRequest naming it.

Conformance modes (a dialect's ``conformance`` setting): ``strict`` refuses what the document marks
required; ``lenient`` lets through the few gaps whose money effect is unambiguous (each dialect decides which,
with :func:`tolerate` and :func:`numeric_strings`) and notes each on ``op.params[LENIENT]``, which the
scorecard reports as what a strict counterpart would refuse.
"""

from __future__ import annotations

import functools
import hashlib
from decimal import Decimal
from typing import Any

from simulator.config.yamlsrc import did_you_mean
from simulator.errors import BadRequest
from simulator.money import MAX_AMOUNT, decimals, is_amount, parse_amount
from simulator.operations import Operation

MAX_ID = 255
#: ``op.params`` key: what the request left out or bent, as ``(field, problem)`` pairs (see the docstring)
LENIENT = "conformance_notes"


def note(op: Operation, key: str, problem: str) -> None:
    op.params.setdefault(LENIENT, []).append((key, problem))


def tolerate(op: Operation, fields: dict[str, Any], key: str, lenient: bool) -> bool:
    """True when the doc-required ``key`` is missing and lenient mode lets that through (noted on ``op``);
    False when it is present or the mode is strict, so that the caller's required check decides."""
    if not lenient or fields.get(key) is not None:
        return False
    note(op, key, "missing")
    return True


def numeric_strings(op: Operation, fields: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Lenient mode: amounts sent as numeric strings (``"100.10"``) read as those numbers, exactly. Returns
    a copy when it converts any (the request as sent stays in the journal), else ``fields`` itself."""
    converted = dict(fields)
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str):
            try:
                converted[key] = parse_amount(value)
            except ValueError:
                continue  # not a number: the amount check refuses it as usual
            note(op, key, "sent as a string")
    return converted if converted != fields else fields


def kind(value: Any) -> str:
    """What a decoded JSON value is, for "must be a number, got a string"."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Decimal | int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def absent(fields: dict[str, Any], key: str, known: tuple[str, ...]) -> BadRequest:
    """The refusal of a missing ``key``: ``unknown field 'transid' (did you mean 'transId'?)`` when a field
    the operation does not know is a near miss of it, else ``transId is required``."""
    unknown = [name for name in fields if name not in known]
    near = [name for name in unknown if did_you_mean(name, [key])]
    if near:
        return BadRequest(f"unknown field {near[0]!r} (did you mean {key!r}?)")
    return BadRequest(f"{key} is required")


def text(fields: dict[str, Any], key: str, *, required: bool = True, max_len: int = MAX_ID) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{key} must be a non-empty string")
    if len(value) > max_len:
        raise BadRequest(f"{key} is longer than {max_len} characters")
    return value


def required_text(fields: dict[str, Any], key: str, max_len: int = MAX_ID) -> str:
    value = text(fields, key, max_len=max_len)
    assert value is not None
    return value


def flag(fields: dict[str, Any], key: str, *, required: bool = True) -> bool | None:
    value = fields.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def amount(
    fields: dict[str, Any], key: str, max_decimals: int, *, required: bool = True, negative: bool = False
) -> Decimal | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not is_amount(value):
        raise BadRequest(f"{key} must be a finite number within {MAX_AMOUNT:.0E}")
    assert isinstance(value, Decimal)
    if value < 0 and not negative:
        raise BadRequest(f"{key} must not be negative")
    if decimals(value) > max_decimals:
        raise BadRequest(f"{key} has more than {max_decimals} decimal places")
    return value


def required_amount(fields: dict[str, Any], key: str, max_decimals: int, *, negative: bool = False) -> Decimal:
    value = amount(fields, key, max_decimals, negative=negative)
    assert value is not None
    return value


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def fingerprint(fields: dict[str, Any]) -> int:
    """What identifies "the same payload": a 64-bit hash of the request, in which ``10`` and ``10.0`` are
    equal and key order does not matter. The same in every process (a shared store keeps it, not the
    request): ``repr`` of the canonical form, never Python's salted ``hash``. One int per transaction."""
    text = repr(_canonical(fields)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


@functools.lru_cache(maxsize=4096)  # amounts repeat (jsonio shares their Decimal objects too)
def _number(value: Decimal) -> tuple[str, str]:
    return ("n", str(value.normalize()) if value.is_finite() else repr(value))


def _canonical(value: Any) -> Any:
    """Strings, booleans and None as they are; numbers as their normalised decimal text; objects as
    sorted (key, value) tuples; arrays as tuples."""
    cls = value.__class__
    if cls is str or cls is bool or value is None:
        return value
    if cls is Decimal:
        return _number(value)
    if cls is dict:
        return tuple(sorted([(str(k), _canonical(v)) for k, v in value.items()]))
    if isinstance(value, int | float):
        return _number(Decimal(repr(value)))
    if isinstance(value, list | tuple):
        return ("a", *(_canonical(v) for v in value))
    if isinstance(value, dict):
        return tuple(sorted([(str(k), _canonical(v)) for k, v in value.items()]))
    if isinstance(value, str):
        return str(value)
    return ("?", repr(value))
