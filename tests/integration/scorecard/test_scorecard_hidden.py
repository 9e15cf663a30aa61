"""The scorecard judges an injected answer that hides its money effect (issue 22, item 8): a rule that
applies a transfer and answers it as a duplicate (XPro 3, Fizzy ``ERROR_TRANSACTION_DUPLICATE``, AMBSlot
900) or with any ``respond`` code. A client that then sends the money again under a new id double-spends;
one that checks (status, balance) and stops has recovered. Through HTTP, against the shipped
``duplicate_submission`` scenario, one test per dialect."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from simulator import cli
from tests.conftest import Harness, Start

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


async def report(h: Harness) -> dict[str, Any]:
    status, body = await h.admin("GET", "/_sim/report")
    assert status == 200 and isinstance(body, dict), body
    return body


def only_fault(rep: dict[str, Any]) -> dict[str, Any]:
    found = [f for f in rep["findings"] if f["kind"] == "fault"]
    assert len(found) == 1, found
    fault: dict[str, Any] = found[0]
    return fault


async def duplicate_submission(start: Start) -> Harness:
    h = await start(scenario_file=str(SCENARIOS / "duplicate_submission.yaml"))
    await h.xpro.authenticate()
    return h


async def test_xpro_resend_after_an_applied_duplicate_is_a_double_spend_and_the_scorecard_is_red(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    h = await duplicate_submission(start)
    assert (await h.xpro.transfer("player001", 5, "A1")).json["code"] == 0
    assert (await h.xpro.transfer("player001", 7, "A2")).json["code"] == 3  # applied, answered "already exists"
    assert (await h.xpro.transfer("player001", 7, "A2-again")).json["code"] == 0  # the naive client
    rep = await report(h)
    fault = only_fault(rep)
    assert fault["verdict"] == "double_spend" and fault["severity"] == "fail" and fault["hidden"] is True
    assert fault["transaction"] == "A2" and "'A2-again'" in fault["message"] and "moved twice" in fault["message"]
    assert "rule 'applied-then-duplicate'" in fault["cause"] and "check/transactions" in fault["message"]
    assert rep["ok"] is False and rep["summary"]["by_verdict"]["double_spend"] == 1

    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url]) == 1
    assert "NOT OK" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url, "--format", "junit"]) == 1
    failure = ET.fromstring(capsys.readouterr().out).find(".//failure")
    assert failure is not None and failure.get("type") == "double_spend"


async def test_xpro_a_client_that_checks_recovers_and_one_that_never_checks_is_warned(start: Start) -> None:
    h = await duplicate_submission(start)
    await h.xpro.transfer("player001", 5, "A1")
    assert (await h.xpro.transfer("player001", 7, "A2")).json["code"] == 3
    fault = only_fault(await report(h))
    assert fault["verdict"] == "abandoned" and fault["severity"] == "warn"  # it believed a definite answer
    assert (await h.xpro.check("player001", "A2")).json["code"] == 0
    fault = only_fault(await report(h))
    assert fault["verdict"] == "recovered" and fault["follow_up"] == "status" and fault["severity"] == "info"

    await h.admin("POST", "/_sim/reset")
    await h.xpro.transfer("player001", 5, "B1")
    assert (await h.xpro.transfer("player001", 7, "B2")).json["code"] == 3
    assert (await h.xpro.balance("player001")).json["code"] == 0  # checks the balance, then stops
    fault = only_fault(await report(h))
    assert fault["verdict"] == "recovered" and fault["follow_up"] == "balance"
    assert "checked the balance" in fault["message"]
    assert (await h.xpro.transfer("player001", 7, "B2-again")).json["code"] == 0  # ... and yet resends
    assert only_fault(await report(h))["verdict"] == "double_spend"


async def test_xpro_a_respond_rule_that_applies_is_judged_too(start: Start) -> None:
    h = await start()
    await h.xpro.authenticate()
    rules = (
        "name: applied-refusal\n"
        "players: [{dialect: xpro, agent: demo, username: player001, balance: '100.00'}]\n"
        "rules:\n"
        "  - match: {dialect: xpro, operation: withdraw}\n"
        "    respond: {error: insufficient_funds}\n"
        "    apply: true\n"
        "    times: 1\n"
    )
    assert (await h.admin("PUT", "/_sim/scenario", text=rules))[0] == 200
    assert (await h.xpro.transfer("player001", -10, "W1")).json["code"] == 2  # "insufficient funds", applied
    assert (await h.xpro.transfer("player001", -10, "W1-again")).json["code"] == 0
    fault = only_fault(await report(h))
    assert fault["verdict"] == "double_spend" and fault["operation"] == "withdraw" and "code 2" in fault["cause"]


async def test_fizzy_deposit_resent_after_an_applied_duplicate_is_a_double_spend(start: Start) -> None:
    h = await duplicate_submission(start)
    assert (await h.fizzy.withdraw("p-1", 5, txn="W1", round_id="r1")).status == 200
    assert (await h.fizzy.deposit("p-1", 8, "W1", txn="D1", round_id="r1")).status == 200
    assert (await h.fizzy.withdraw("p-1", 5, txn="W2", round_id="r2")).status == 200
    dup = await h.fizzy.deposit("p-1", 8, "W2", txn="D2", round_id="r2")
    assert dup.status == 400 and dup.json["code"] == "ERROR_TRANSACTION_DUPLICATE"
    again = await h.fizzy.deposit("p-1", 8, "W2", txn="D2-again", round_id="r2")
    assert again.status == 200, again.json
    fault = only_fault(await report(h))
    assert fault["verdict"] == "double_spend" and fault["severity"] == "fail" and fault["transaction"] == "D2"
    assert (await h.fizzy.balance("p-1")).json["balance"] == Decimal("114.00")  # 100 - 5 + 8 - 5 + 8 + 8: paid twice


async def test_ambslot_payout_resent_after_an_applied_duplicate_is_a_double_spend(start: Start) -> None:
    h = await duplicate_submission(start)
    for n in (1, 2):
        assert (await h.amb.bet("member001", f"R{n}", 5, txn=f"B{n}")).json["status"]["code"] == 0
    assert (await h.amb.payout("member001", "R1", 8, txn="P1")).json["status"]["code"] == 0
    assert (await h.amb.payout("member001", "R2", 8, txn="P2")).json["status"]["code"] == 900  # applied
    again = await h.amb.payout("member001", "R2", 8, txn="P2-again")
    assert again.json["status"]["code"] == 0, again.json
    fault = only_fault(await report(h))
    assert fault["verdict"] == "double_spend" and fault["transaction"] == "P2" and fault["dialect"] == "ambslot"
    assert (await report(h))["ok"] is False

    await h.admin("POST", "/_sim/reset")
    for n in (1, 2):
        await h.amb.bet("member001", f"R{n}", 5, txn=f"B{n}")
    await h.amb.payout("member001", "R1", 8, txn="P1")
    assert (await h.amb.payout("member001", "R2", 8, txn="P2")).json["status"]["code"] == 900
    assert (await h.amb.payout("member001", "R2", 8, txn="P2")).json["status"]["code"] == 0  # retried: replayed
    fault = only_fault(await report(h))
    assert fault["verdict"] == "recovered" and fault["follow_up"] == "retry"


async def test_a_duplicate_answer_that_moved_nothing_is_not_judged(start: Start) -> None:
    h = await duplicate_submission(start)
    assert (await h.xpro.transfer("player001", 5, "DUP-1")).json["code"] == 3  # the DUP- prefix rule, no apply
    assert (await h.xpro.transfer("player001", 5, "fresh-1")).json["code"] == 0
    assert [f for f in (await report(h))["findings"] if f["kind"] == "fault"] == []
