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


#: nesting deeper than this is refused: no wallet message needs it, and deeper documents would break the
#: fingerprint's recursion and orjson (which writes at most 254 levels) when the journal echoes them
MAX_DEPTH = 64


class JSONError(ValueError):
    """The bytes are not one valid JSON document."""


def depth(value: Any) -> int:
    """Nesting depth of a decoded document (a scalar is 0), walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        level += 1
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level) for child in node if isinstance(child, (dict, list)))
    return deepest


# Decimals are immutable, so the same number text can share one object: amounts repeat (stakes of 1.00,
# 5.00, ...) and each stored transaction then holds no Decimal of its own. Bounded, like any cache here.
_number = functools.lru_cache(maxsize=4096)(Decimal)
_DECODER = simplejson.JSONDecoder(parse_float=_number, parse_int=_number, allow_nan=False)


def loads(data: bytes | str) -> Any:
    return _load(data, _DECODER)


def _load(data: bytes | str, decoder: simplejson.JSONDecoder) -> Any:
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        try:
            value = decoder.decode(data)
        except RecursionError:
            raise JSONError(f"nesting deeper than {MAX_DEPTH} levels") from None
        # the count is a C-speed upper bound of the depth: only documents that could be too deep are walked
        if data.count("[") + data.count("{") > MAX_DEPTH and depth(value) > MAX_DEPTH:
            raise JSONError(f"nesting deeper than {MAX_DEPTH} levels")
        if _SURROGATE_ESCAPE.search(data):
            # a lone surrogate is not a character: refuse it here rather than fail when echoing it back
            dumpb(value)
        return value
    except (UnicodeError, simplejson.JSONDecodeError, orjson.JSONEncodeError) as exc:
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


def printable(obj: Any, limit: int = MAX_DEPTH) -> Any:
    """A copy of ``obj`` that :func:`dumpb` can always write: strings made valid UTF-8, keys made strings,
    nesting beyond ``limit`` replaced by a marker. For echoing recorded data that might not be clean."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(obj, (dict, list, tuple)) and limit <= 0:
        return "…(nested too deep)"
    if isinstance(obj, dict):
        return {printable(str(k), 1): printable(v, limit - 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [printable(v, limit - 1) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return dumpb(obj).decode("utf-8")


def pretty(obj: Any) -> str:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2).decode("utf-8")


#: bounds on a number read from a peer we do not trust (certify reading a wallet's answer): converting
#: ``1e1000000`` to an int costs tens of seconds of CPU, so the size of a number is checked first
MAX_NUMBER_CHARS = 64
MAX_NUMBER_EXPONENT = 64


def _bounded_number(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise JSONError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS} are read)")
    value = _number(text)
    if value.is_finite() and abs(value.adjusted()) > MAX_NUMBER_EXPONENT:
        raise JSONError(f"the number {text} is out of range (exponent beyond {MAX_NUMBER_EXPONENT})")
    return value


_BOUNDED_DECODER = simplejson.JSONDecoder(parse_float=_bounded_number, parse_int=_bounded_number, allow_nan=False)


def loads_bounded(data: bytes | str) -> Any:
    """:func:`loads` for untrusted peers: also refuses numbers longer than :data:`MAX_NUMBER_CHARS` or with
    an exponent beyond :data:`MAX_NUMBER_EXPONENT`, before anything converts them."""
    return _load(data, _BOUNDED_DECODER)
