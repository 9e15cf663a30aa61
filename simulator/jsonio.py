"""JSON in and out with exact numbers.

Every number is read as ``Decimal`` (integers too, so ``10`` and ``10.0`` compare equal), ``NaN`` and
``Infinity`` are refused, and ``Decimal`` values are written as plain JSON numbers.

Reading uses simplejson (it parses numbers straight into ``Decimal``) with one cached decoder; writing
uses orjson, which embeds each ``Decimal``'s exact text as a raw number (``orjson.Fragment``): the
benchmark showed encoding at 1.2 us instead of simplejson's 12 us per response.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Any

import orjson
import simplejson

# A \uD800-\uDFFF escape; valid pairs are joined by the decoder, so only lone ones survive it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONError(ValueError):
    """The bytes are not one valid JSON document."""


# Decimals are immutable, so the same number text can share one object: amounts repeat (stakes of 1.00,
# 5.00, ...) and each stored transaction then holds no Decimal of its own. Bounded, like any cache here.
_number = functools.lru_cache(maxsize=4096)(Decimal)
_DECODER = simplejson.JSONDecoder(parse_float=_number, parse_int=_number, allow_nan=False)


def loads(data: bytes | str) -> Any:
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        value = _DECODER.decode(data)
        if _SURROGATE_ESCAPE.search(data):
            # a lone surrogate is not a character: refuse it here rather than fail when echoing it back
            dumpb(value)
        return value
    except (UnicodeError, simplejson.JSONDecodeError, RecursionError, orjson.JSONEncodeError) as exc:
        raise JSONError(str(exc)) from None


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(str(obj))
    return str(obj)


def dumpb(obj: Any) -> bytes:
    """Compact UTF-8 JSON; a string that cannot be UTF-8 (a lone surrogate) raises orjson.JSONEncodeError."""
    try:
        return orjson.dumps(obj, default=_default)
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds" not in str(exc):
            raise
        # orjson stops at 64-bit integers; the rare document holding a larger one takes the slow road
        return simplejson.dumps(obj, use_decimal=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def dumps(obj: Any) -> str:
    return dumpb(obj).decode("utf-8")


def pretty(obj: Any) -> str:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2).decode("utf-8")
