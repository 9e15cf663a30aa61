"""Exact money: parsing wire numbers into ``Decimal`` and writing them back without float artefacts.

Every JSON number on the wire is parsed as ``Decimal`` (see :mod:`simulator.jsonio`); this module decides
which of those are acceptable amounts and how a ``Decimal`` is written back.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
#: Largest absolute amount accepted from the wire or the admin API. Bounding inputs keeps every sum far
#: inside the 28 significant digits of the default decimal context, so no arithmetic ever rounds.
MAX_AMOUNT = Decimal(10) ** 15


def decimals(value: Decimal) -> int:
    """Number of decimal places written in ``value`` (``Decimal('1.50')`` has 2, ``Decimal('1E+2')`` 0)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def is_amount(value: object) -> bool:
    """A finite ``Decimal`` within :data:`MAX_AMOUNT` (``bool`` and ``float`` are never amounts)."""
    # copy_abs, not abs(): abs() rounds to the context and raises Overflow past its exponent (1e999999999)
    return isinstance(value, Decimal) and value.is_finite() and value.copy_abs() <= MAX_AMOUNT


def parse_amount(value: object) -> Decimal:
    """Parse money from configuration or admin input: numbers or numeric strings, never floats' artefacts."""
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not a boolean")
    if isinstance(value, float):
        value = repr(value)  # YAML floats: take the shortest text that round-trips, i.e. what was written
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, (int, str)) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite() or amount.copy_abs() > MAX_AMOUNT:
        raise ValueError(f"{value!r} is not a finite amount within {MAX_AMOUNT:,}")
    return amount


def out(value: Decimal, places: int | None = None) -> Decimal:
    """A ``Decimal`` ready for JSON: optionally rounded half-up to ``places``, trailing zeros and exponent
    removed, and never ``-0`` (``Decimal('1000.00')`` -> ``1000``, ``Decimal('99.90')`` -> ``99.9``)."""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if value == 0:
        return ZERO
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        value = value.quantize(Decimal(1))
    return value
