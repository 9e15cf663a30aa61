"""JSON in and out with exact numbers.

Every number is read as ``Decimal`` (integers too, so ``10`` and ``10.0`` compare equal), ``NaN`` and
``Infinity`` are refused, and ``Decimal`` values are written as plain JSON numbers.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import simplejson

# A \uD800-\uDFFF escape; valid pairs are joined by the decoder, so only lone ones survive it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONError(ValueError):
    """The bytes are not one valid JSON document."""


def loads(data: bytes | str) -> Any:
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        value = simplejson.loads(data, use_decimal=True, parse_int=Decimal, allow_nan=False)
        if _SURROGATE_ESCAPE.search(data):
            # a lone surrogate is not a character: refuse it here rather than fail when echoing it back
            simplejson.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except (UnicodeError, simplejson.JSONDecodeError, RecursionError) as exc:
        raise JSONError(str(exc)) from None


def dumps(obj: Any) -> str:
    return simplejson.dumps(obj, use_decimal=True, separators=(",", ":"), ensure_ascii=False, default=str)


def pretty(obj: Any) -> str:
    return simplejson.dumps(obj, use_decimal=True, indent=2, ensure_ascii=False, default=str)
