"""The shared journal's stream entries: what a replica publishes reads back as the same entry, numbers exact,
and an entry published by an earlier version (request, params and body as strings inside ``e``) too."""

from __future__ import annotations

import json
from decimal import Decimal

from simulator import jsonio
from simulator.journal import Entry
from simulator.operations import Operation
from simulator.store import journal


def entry() -> Entry:
    op = Operation(
        dialect="fizzy",
        operation="withdraw",
        endpoint="/wallet/withdraw",
        agent="pk",
        player="p-1",
        transaction="t-1",
        round="r-1",
        currency="EUR",
        amount=Decimal("0.10"),
        request={"transactionId": "t-1", "amount": Decimal("0.10"), "jackpotAmount": None},
        params={"session": "s-1", "started": 1.5, "fingerprint": 12345678901234567},
        mutating=True,
        authenticated=True,
    )
    return Entry(
        seq=7,
        time=1_800_000_000.25,
        dialect="fizzy",
        endpoint="/wallet/withdraw",
        op=op,
        status=200,
        body={"balance": Decimal("99.90"), "currency": "EUR"},
        code=None,
        rule=None,
        fault=None,
        detail=None,
        ms=0.75,
        size=2048,
    )


def as_read(pairs: list[str | bytes]) -> dict[str, str]:
    """The fields as the pooled client reads them back (decoded to text)."""
    values = [p.decode() if isinstance(p, bytes) else p for p in pairs]
    return dict(zip(values[::2], values[1::2], strict=True))


def test_an_entry_reads_back_the_same_with_exact_numbers() -> None:
    original = entry()
    item = as_read(journal._pairs("replica-a", journal.encode(original)))
    assert set(item) == {"o", "e", "q", "b"} and item["o"] == "replica-a"
    read = journal.decode(item, 3)
    assert read.seq == 3 and read.time == original.time and read.ms == original.ms and read.status == 200
    assert read.body == {"balance": Decimal("99.90"), "currency": "EUR"}
    assert str(read.body["balance"]) == "99.90"  # the number as it was written, not a float
    assert read.op is not None and original.op is not None
    assert read.op.request == original.op.request and str(read.op.request["amount"]) == "0.10"
    assert read.op.params == original.op.params and read.op.amount == Decimal("0.10")
    assert (read.op.player, read.op.transaction, read.op.mutating) == ("p-1", "t-1", True)


def test_an_entry_without_a_decoded_request_has_no_request_field() -> None:
    bare = entry()
    bare.op = None
    item = as_read(journal._pairs("replica-a", journal.encode(bare)))
    assert "q" not in item and journal.decode(item, 1).op is None


def test_a_request_body_over_the_cap_is_published_as_its_prefix() -> None:
    big = entry()
    assert big.op is not None
    big.op.request = {"junk": "z" * (journal.BODY_CAP + 10)}
    request = journal.decode(as_read(journal._pairs("a", journal.encode(big))), 1).op
    assert request is not None and request.request["truncated"] is True
    assert len(request.request["prefix"]) == journal.BODY_CAP


def test_an_entry_published_by_the_earlier_format_reads_the_same() -> None:
    original = entry()
    meta = json.loads(journal.encode(original)[0])
    assert original.op is not None
    meta["op"]["params"] = json.dumps(original.op.params)  # the earlier format: strings of JSON
    meta["op"]["request"] = jsonio.dumps(original.op.request)
    meta["body"] = jsonio.dumps(original.body)
    read = journal.decode({"o": "old-replica", "e": json.dumps(meta)}, 9)
    assert read.body == original.body and str(read.body["balance"]) == "99.90"
    assert read.op is not None and read.op.request == original.op.request and read.op.params == original.op.params
