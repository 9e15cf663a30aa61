"""XPro refusals name the field (through HTTP, encrypted bodies): what is missing, what has the wrong type,
which unknown field is a typo of which; and the scorecard counts them as it counts Fizzy's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("path", "payload", "detail"),
    [
        ("/v2/members/transaction", {"username": "player001", "transId": "T-1"}, "amount is required"),
        (
            "/v2/members/transaction",
            {"username": "player001", "transId": "T-1", "amount": "10"},
            "amount must be a number, got a string",
        ),
        (
            "/v2/members/transaction",
            {"username": "player001", "transId": "T-1", "amount": True},
            "amount must be a number, got a boolean",
        ),
        (
            "/v2/members/transaction",
            {"username": "player001", "transid": "T-1", "amount": 10},
            "unknown field 'transid' (did you mean 'transId'?)",
        ),
        ("/v2/members/balance", {"user": "player001"}, "unknown field 'user' (did you mean 'username'?)"),
        ("/v2/members/balance", {}, "username is required"),
        ("/v2/members/balance", {"username": 7}, "username must be a string, got a number"),
        ("/v2/members/cashout", {"username": "player001"}, "transId is required"),
        (
            "/v2/members/check/transactions",
            {"username": "player001", "transId": ["T"]},
            "transId must be a string, got an array",
        ),
        (
            "/v2/members/transaction",
            {"username": "player001", "transId": "T-1", "amount": 1e16},
            "amount must be a finite number within 1e15",
        ),
    ],
)
async def test_refusals_name_the_field(xp: Harness, path: str, payload: dict[str, Any], detail: str) -> None:
    reply = await xp.xpro.call(path, payload)
    assert reply.json["code"] == 11 and reply.json["message"] == "Parameters error"
    assert reply.headers["X-Sim-Detail"] == detail
    assert (await xp.xpro.balance("player001")).json["data"]["balance"] == 0  # nothing changed


async def test_auth_names_the_missing_field(h: Harness) -> None:
    reply = await h.xpro.call("/v2/auth", {"agentId": "demo", "secrte": "demo-secret"})
    assert reply.json["code"] == 11
    assert reply.headers["X-Sim-Detail"] == "unknown field 'secrte' (did you mean 'secret'?)"
    reply = await h.xpro.call("/v2/auth", {"agentId": "demo", "secret": 5})
    assert reply.headers["X-Sim-Detail"] == "secret must be a string, got a number"


async def test_the_scorecard_counts_missing_and_misspelt_xpro_fields(xp: Harness) -> None:
    await xp.xpro.call("/v2/members/transaction", {"username": "player001", "transId": "T-1"})
    await xp.xpro.call("/v2/members/transaction", {"username": "player001", "transId": "T-2"})
    await xp.xpro.call("/v2/members/transaction", {"username": "player001", "transid": "T-3", "amount": 5})
    status, rep = await xp.admin("GET", "/_sim/report")
    assert status == 200
    found = {(f["dialect"], f["check"]): f for f in rep["findings"] if f["kind"] != "fault"}
    assert found[("xpro", "missing_required_field")]["message"] == (
        "2 transaction request(s) refused: amount is required"
    )
    assert found[("xpro", "unknown_field")]["message"] == (
        "1 transaction request(s) refused: unknown field 'transid' (did you mean 'transId'?)"
    )
