"""Exact money and JSON: parsing, output without float artefacts, refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulator import jsonio
from simulator.money import decimals, is_amount, out, parse_amount


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Decimal("99.90"), None, "99.9"),
        (Decimal("1000.00"), None, "1000"),
        (Decimal("1E+3"), None, "1000"),
        (Decimal("-0.00"), None, "0"),
        (Decimal("1.1234565"), 6, "1.123457"),
        (Decimal("1.1234564"), 6, "1.123456"),
        (Decimal("2.5"), 0, "3"),
        (Decimal("0.000001"), None, "0.000001"),
    ],
)
def test_out(value: Decimal, places: int | None, expected: str) -> None:
    assert jsonio.dumps(out(value, places)) == expected


def test_sums_stay_exact() -> None:
    total = Decimal(0)
    for _ in range(10):
        total += jsonio.loads("0.1")
    assert jsonio.dumps({"v": out(total)}) == '{"v":1}'
    assert jsonio.dumps({"v": out(jsonio.loads("100.1") - jsonio.loads("0.2"))}) == '{"v":99.9}'


@pytest.mark.parametrize(
    ("value", "expected"), [("10", Decimal(10)), (10, Decimal(10)), (0.1, Decimal("0.1")), ("1e2", Decimal(100))]
)
def test_parse_amount(value: object, expected: Decimal) -> None:
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value", [True, "abc", "NaN", "inf", "1e16", None, [1]])
def test_parse_amount_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(value)


def test_is_amount_and_decimals() -> None:
    assert is_amount(Decimal("1.5")) and not is_amount(True) and not is_amount(1.5) and not is_amount(Decimal("NaN"))
    assert (decimals(Decimal("1.50")), decimals(Decimal("1E+2")), decimals(Decimal(7))) == (2, 0, 0)


def test_loads_reads_every_number_as_decimal() -> None:
    assert jsonio.loads('{"a": 10.1, "b": 3, "c": [1e-2]}') == {
        "a": Decimal("10.1"),
        "b": Decimal(3),
        "c": [Decimal("0.01")],
    }


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        '{"a": Infinity}',
        "-Infinity",
        "{",
        "",
        "\xff",
        b"\xff\xfe",
        '"\\ud800"',
        '{"u": "x\\udc80"}',
        "[" * 100_000,
    ],
)
def test_loads_refuses(text: str | bytes) -> None:
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(text)


def test_loads_accepts_surrogate_pairs_and_non_ascii() -> None:
    assert jsonio.loads('"\\ud83d\\ude00 plä"') == "\U0001f600 plä"
    assert jsonio.dumps("plä") == '"plä"'


def test_log_ids_are_uuid4() -> None:
    import uuid

    from simulator.dialects.base import log_id

    ids = {log_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
