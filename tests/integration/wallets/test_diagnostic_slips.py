"""Small diagnostics that must not mislead: the shortened signature string reads the same in the
X-Sim-Detail header as in the journal (no literal ``?`` for an ellipsis)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness

pytestmark = pytest.mark.asyncio


async def last_entry(h: Harness) -> dict[str, Any]:
    status, body = await h.admin("GET", "/_sim/journal")
    assert status == 200
    entries = body["entries"] if isinstance(body, dict) else body
    entry: dict[str, Any] = entries[-1]
    return entry


async def test_shortened_signature_string_reads_the_same_in_header_and_journal(xp: Harness) -> None:
    prepared = xp.xpro.prepare("/v2/members/balance", {"username": "player001", "padding": "x" * 300})
    prepared.headers["x-signature"] = "0" * 64
    reply = await xp.xpro.send(prepared)
    assert reply.json["code"] == 83
    header = reply.headers["X-Sim-Detail"]
    assert "computed over '" in header and "..." in header and "?" not in header, header
    detail = (await last_entry(xp))["detail"]
    assert detail == header  # one text: what the caller sees is what the journal keeps


async def test_fizzy_shortened_string_too(h: Harness) -> None:
    prepared = h.fizzy.prepare("/wallet/balance?" + "q" * 200, {"playerId": "p-1"}, private_key="wrong")
    reply = await h.fizzy.send(prepared)
    assert reply.status == 401
    header = reply.headers["X-Sim-Detail"]
    assert "qqq..." in header.split("computed over")[1], header
    assert (await last_entry(h))["detail"][:512] == header  # the header is cut at 512 characters
