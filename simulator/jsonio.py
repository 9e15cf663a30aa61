"""JSON in and out with exact numbers.

Every number is read as ``Decimal`` (integers too, so ``10`` and ``10.0`` compare equal), ``NaN`` and
``Infinity`` are refused, and ``Decimal`` values are written as plain JSON numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson


class JSONError(ValueError):
    """The bytes are not one valid JSON document."""


def loads(data: bytes | str) -> Any:
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return simplejson.loads(data, use_decimal=True, parse_int=Decimal, allow_nan=False)
    except (UnicodeDecodeError, simplejson.JSONDecodeError, RecursionError) as exc:
        raise JSONError(str(exc)) from None


def dumps(obj: Any) -> str:
    return simplejson.dumps(obj, use_decimal=True, separators=(",", ":"), ensure_ascii=False, default=str)


def pretty(obj: Any) -> str:
    return simplejson.dumps(obj, use_decimal=True, indent=2, ensure_ascii=False, default=str)
