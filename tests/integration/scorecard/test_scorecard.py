"""The scorecard as an integrator meets it: scripted clients (one that recovers, one that double-spends, one
that abandons, one that reuses nonces, ...) run against scenarios injecting each fault, over HTTP, and each
earns exactly its verdict in ``GET /_sim/report``, its JUnit form, the CLI and the pytest plugin."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator import cli
from tests.conftest import Clock, Harness, Start
from tests.integration.wallets.test_scenarios_http import Gate, until

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


async def report(h: Harness) -> dict[str, Any]:
    status, body = await h.admin("GET", "/_sim/report")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def faults(rep: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in rep["findings"] if f["kind"] == "fault"]


def only_fault(rep: dict[str, Any]) -> dict[str, Any]:
    found = faults(rep)
    assert len(found) == 1, found
    return found[0]


def checks(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in rep["findings"] if f["kind"] != "fault"}


async def lost_xpro_deposit(start: Start, **options: Any) -> Harness:
    """applied_but_lost.yaml: the 3rd XPro deposit is applied and its connection dropped (D3)."""
    h = await start(scenario_file=str(SCENARIOS / "applied_but_lost.yaml"), **options)
    await h.xpro.authenticate()
    for n in (1, 2):
        assert (await h.xpro.transfer("player001", 10, f"D{n}")).json["code"] == 0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await h.xpro.transfer("player001", 10, "D3")
    return h


# the done-when: applied_but_lost.yaml, a lost XPro transfer


async def test_a_client_that_resends_a_lost_transfer_under_a_new_id_double_spends(start: Start) -> None:
    h = await lost_xpro_deposit(start)
    assert (await h.xpro.transfer("player001", 10, "D3-again")).json["code"] == 0  # the naive client
    rep = await report(h)
    fault = only_fault(rep)
    assert fault["verdict"] == "double_spend" and fault["severity"] == "fail"
    assert fault["dialect"] == "xpro" and fault["player"] == "player001" and fault["transaction"] == "D3"
    assert "'D3-again'" in fault["message"] and "moved twice" in fault["message"]
    seqs = [e["seq"] for e in (await h.admin("GET", "/_sim/journal?operation=deposit"))[1]]
    assert fault["requests"] == seqs[-2:]  # the lost deposit and the resend
    assert rep["ok"] is False
    assert rep["summary"]["judged"] == 1 and rep["summary"]["failed"] == 1
    assert rep["summary"]["by_verdict"]["double_spend"] == 1
    assert rep["players"]["xpro/demo/player001"]["transactions"] == {"D3": [fault["id"]]}

    status, xml = await h.admin("GET", "/_sim/report?format=junit")
    assert status == 200 and isinstance(xml, str)
    root = ET.fromstring(xml)
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suite = root.find("testsuite[@name='scorecard.faults']")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case is not None and case.get("classname") == "scorecard.xpro.demo.player001"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "double_spend"
    assert "moved twice" in (failure.get("message") or "")


async def test_a_client_that_asks_check_transactions_recovers(start: Start) -> None:
    h = await lost_xpro_deposit(start)
    assert (await h.xpro.check("player001", "D3")).json["code"] == 0
    rep = await report(h)
    fault = only_fault(rep)
    assert fault["verdict"] == "recovered" and fault["severity"] == "info"
    assert fault["applied"] is True and fault["follow_up"] == "status"
    assert rep["ok"] is True and rep["summary"] == {
        "judged": 1,
        "passed": 1,
        "failed": 0,
        "warnings": 0,
        "by_verdict": {"recovered": 1, "double_spend": 0, "abandoned": 0, "gave_up_cleanly": 0, "unsafe_resend": 0},
        "by_kind": {"fault": 1, "hygiene": 0, "conformance": 0},
    }
    status, xml = await h.admin("GET", "/_sim/report?format=junit")
    root = ET.fromstring(xml)
    assert status == 200 and root.get("failures") == "0" and root.find(".//failure") is None
    assert root.find(".//testcase") is not None


async def test_a_client_that_retries_with_the_same_trans_id_recovers(start: Start) -> None:
    h = await lost_xpro_deposit(start)
    await h.xpro.balance("player001")  # not a follow-up on D3: the judge looks further
    assert (await h.xpro.transfer("player001", 10, "D3")).json["code"] == 3  # "already exist": it was applied
    fault = only_fault(await report(h))
    assert fault["verdict"] == "recovered" and fault["follow_up"] == "retry"


async def test_a_client_that_never_follows_up_abandons_and_the_window_is_a_setting(start: Start) -> None:
    clock = Clock(time.time())
    h = await lost_xpro_deposit(start, clock=clock, cfg={"scorecard": {"window": 60}})
    h.xpro.clock = clock
    fault = only_fault(await report(h))
    assert fault["verdict"] == "abandoned" and fault["severity"] == "fail"
    assert 0 < fault["window_open"] <= 60 and "so far" in fault["message"]
    clock.now += 61
    assert (await h.xpro.check("player001", "D3")).json["code"] == 0  # too late to count
    fault = only_fault(await report(h))
    assert fault["verdict"] == "abandoned" and "window_open" not in fault
    assert "never confirmed" in fault["message"] and "check/transactions" in fault["message"]


async def test_reset_clears_the_report(start: Start) -> None:
    h = await lost_xpro_deposit(start)
    assert faults(await report(h))
    assert (await h.admin("POST", "/_sim/reset"))[0] == 200
    rep = await report(h)
    assert rep["findings"] == [] and rep["ok"] is True and rep["journal"]["held"] == 0


# faults that were not applied


async def test_a_client_that_gives_up_on_an_unapplied_transfer_gives_up_cleanly(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "transaction_pending.yaml"))
    await h.xpro.authenticate()
    assert (await h.xpro.transfer("player001", 5, "PEND-1")).json["code"] == 35
    fault = only_fault(await report(h))
    assert fault["verdict"] == "gave_up_cleanly" and fault["severity"] == "info" and fault["applied"] is False


async def test_a_blind_resend_of_an_unapplied_transfer_warns(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "transaction_pending.yaml"))
    await h.xpro.authenticate()
    assert (await h.xpro.transfer("player001", 5, "PEND-1")).json["code"] == 35
    assert (await h.xpro.transfer("player001", 5, "OTHER-1")).json["code"] == 0
    rep = await report(h)
    fault = only_fault(rep)
    assert fault["verdict"] == "unsafe_resend" and fault["severity"] == "warn"
    assert rep["ok"] is True and rep["summary"]["warnings"] == 1


async def test_a_slow_answer_counts_as_a_timeout_and_a_retry_while_it_is_held_recovers(start: Start) -> None:
    gate = Gate()  # holds the injected 35 s delay until released: no real waiting
    h = await start(scenario_file=str(SCENARIOS / "timeouts.yaml"), sleep=gate)
    await h.xpro.authenticate()
    held = asyncio.create_task(h.xpro.transfer("player001", 5, "HANG-1"))
    await until(lambda: h.sim.ledger.in_flight("xpro", "demo", "HANG-1"))
    assert (await h.xpro.transfer("player001", 5, "HANG-1")).json["code"] == 35  # the client's own retry
    gate.release()
    assert (await held).json["code"] == 0
    assert (await h.xpro.check("player001", "HANG-1")).json["code"] == 0
    verdicts = {f["cause"]: f["verdict"] for f in faults(await report(h))}
    assert verdicts == {"an answer after 35.0 s (past a 30 s client timeout)": "recovered", "code 35": "recovered"}


# Fizzy Bubbly and AMBSlot


async def test_fizzy_retry_of_a_lost_withdraw_recovers_and_a_new_id_double_spends(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "applied_but_lost.yaml"))
    payload = h.fizzy.money("p-1", 25, txn="LOST-1", round_id="r-1")
    with pytest.raises(aiohttp.ClientOSError):
        await h.fizzy.call("/wallet/withdraw", payload)
    assert (await h.fizzy.call("/wallet/withdraw", payload)).status == 200
    assert only_fault(await report(h))["verdict"] == "recovered"

    await h.admin("POST", "/_sim/reset")
    with pytest.raises(aiohttp.ClientOSError):
        await h.fizzy.call("/wallet/withdraw", payload)
    assert (await h.fizzy.withdraw("p-1", 25, txn="NEW-1", round_id="r-1")).status == 200
    fault = only_fault(await report(h))
    assert fault["verdict"] == "double_spend" and fault["transaction"] == "LOST-1"


async def test_fizzy_timeout_rolled_back_recovers_and_an_unpaid_win_fails(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "timeouts.yaml"))
    assert (await h.fizzy.withdraw("p-1", 10, txn="W-1", round_id="TIMEOUT-1")).json["code"] == "ERROR_TIMEOUT"
    assert (await h.fizzy.rollback("p-1", "W-1", round_id="TIMEOUT-1")).status == 400  # nothing to roll back
    assert only_fault(await report(h))["verdict"] == "recovered"

    rules = "name: lost-win\nrules:\n  - {match: {dialect: fizzy, operation: deposit}, fault: reset, times: 1}\n"
    assert (await h.admin("PUT", "/_sim/scenario", text=rules))[0] == 200
    assert (await h.fizzy.withdraw("p-2", 10, txn="W-2")).status == 200
    with pytest.raises(aiohttp.ClientOSError):
        await h.fizzy.deposit("p-2", 30, "W-2", txn="D-2")
    fault = only_fault(await report(h))
    assert fault["verdict"] == "gave_up_cleanly" and fault["severity"] == "fail"
    assert "owed" in fault["message"]


async def test_ambslot_payout_lost_behind_a_gateway(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "applied_but_lost.yaml"))
    payload = h.amb.fields("member001", "R1", 40, turnover=Decimal(0))
    assert (await h.amb.call("/payout", payload)).status == 502
    fault = only_fault(await report(h))
    assert fault["verdict"] == "abandoned" and fault["applied"] is True and fault["cause"] == "a 502 gateway page"
    assert (await h.amb.call("/payout", payload)).json["status"]["code"] == 0
    assert only_fault(await report(h))["verdict"] == "recovered"

    await h.admin("POST", "/_sim/reset")
    assert (await h.amb.call("/payout", payload)).status == 502
    assert (await h.amb.payout("member001", "R1", 40, txn="P-again")).json["status"]["code"] == 0
    fault = only_fault(await report(h))
    assert fault["verdict"] == "double_spend" and "'P-again'" in fault["message"]


async def test_ambslot_unpaid_payout_timeout_fails_and_an_abandoned_bet_does_not(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "timeouts.yaml"))
    assert (await h.amb.payout("member001", "R1", 40)).json["status"]["code"] == 1601
    fault = only_fault(await report(h))
    assert fault["verdict"] == "gave_up_cleanly" and fault["severity"] == "fail"
    rules = "name: bet-fails\nrules:\n  - {match: {dialect: ambslot, operation: bet}, respond: {code: 999}}\n"
    await h.admin("PUT", "/_sim/scenario", text=rules)
    assert (await h.amb.bet("member001", "R2", 10)).json["status"]["code"] == 999
    fault = only_fault(await report(h))
    assert fault["verdict"] == "gave_up_cleanly" and fault["severity"] == "info"


# hygiene


async def test_reused_nonces_are_a_failure(xp: Harness) -> None:
    for path in ("/v2/members/balance", "/v2/members/balance"):
        await xp.xpro.call(path, {"username": "player001"}, nonce="ab" * 16)
    rep = await report(xp)
    finding = checks(rep)["reused_nonce"]
    assert finding["severity"] == "fail" and len(finding["requests"]) == 2 and "1 refused" in finding["message"]
    assert rep["ok"] is False and faults(rep) == []


async def test_clock_skew_token_churn_signature_ids_and_decimals(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "happy_path.yaml"))
    h.xpro.clock = lambda: time.time() + 200  # 200 s ahead: within the 300 s limit, past half of it
    for _ in range(3):
        await h.xpro.authenticate()  # a new token for every call
        assert (await h.xpro.balance("player001")).json["code"] == 0
    assert (await h.xpro.transfer("player001", Decimal("1.005"), "T-1")).json["code"] == 11
    bad = await h.fizzy.call(
        "/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"}, private_key="x"
    )
    assert bad.status == 401
    assert (await h.fizzy.withdraw("p-1", 5, txn="W-9")).status == 200
    assert (await h.fizzy.rollback("p-1", "W-9", txn="W-9")).status == 400  # the withdraw's own id
    found = checks(await report(h))
    assert found["clock_skew"]["severity"] == "warn" and found["clock_skew"]["worst_skew_s"] > 199
    assert found["token_per_call"]["severity"] == "warn" and len(found["token_per_call"]["requests"]) == 4
    assert found["too_many_decimals"]["message"].startswith("1 request(s) sent amount with more than 2")
    sig = found["signature_failure"]
    assert sig["dialect"] == "fizzy" and h.url + "/wallet/balance" in sig["message"]
    assert found["id_reused_across_operations"]["transaction"] == "W-9"


# conformance modes


async def test_strict_refuses_a_missing_cash_amount_and_reports_it(h: Harness) -> None:
    payload = h.fizzy.money("p-1", 5)
    del payload["cashAmount"]
    reply = await h.fizzy.call("/wallet/withdraw", payload)
    assert reply.status == 400 and reply.json["code"] == "ERROR_BAD_REQUEST"
    found = checks(await report(h))["missing_required_field"]
    assert found["message"] == "1 withdraw request(s) refused: cashAmount is required"


async def test_lenient_accepts_unambiguous_gaps_and_lists_them(start: Start) -> None:
    lenient = {"conformance": "lenient"}
    h = await start(cfg={"fizzy": lenient, "ambslot": lenient, "xpro": lenient})
    payload = h.fizzy.money("p-1", 5, txn="W-1")
    for key in ("cashAmount", "jackpotAmount", "isGameRoundFinished"):
        del payload[key]
    reply = await h.fizzy.call("/wallet/withdraw", payload)
    assert reply.status == 200 and reply.json["balance"] == Decimal("995")
    bet = h.amb.fields("member001", "R1", 10)
    for key in ("currency", "timestamp", "game"):
        del bet[key]
    assert (await h.amb.call("/bet", bet)).json["data"]["balance"]["after"] == 990
    cancel = h.amb.fields("member001", "R1", 0)
    del cancel["amount"]
    assert (await h.amb.call("/cancel", cancel)).json["data"]["balance"]["after"] == 1000
    await h.xpro.authenticate()
    await h.xpro.create_member("player001")
    assert (await h.xpro.transfer("player001", "12.50", "T-1")).json["code"] == 0  # sanity: a number
    reply = await h.xpro.call("/v2/members/transaction", {"username": "player001", "amount": "7.50", "transId": "T-2"})
    assert reply.json["data"]["balance"] == Decimal("20")
    rep = await report(h)
    notes = {(f["dialect"], f["check"]): f for f in rep["findings"] if f["kind"] == "conformance"}
    assert notes[("fizzy", "cashAmount missing")]["severity"] == "warn"
    assert "a strict counterpart refuses it" in notes[("fizzy", "cashAmount missing")]["message"]
    assert notes[("fizzy", "jackpotAmount missing (read as null in both modes)")]["severity"] == "info"
    assert {("ambslot", f"{k} missing") for k in ("currency", "timestamp", "game", "amount")} <= set(notes)
    journal = (await h.admin("GET", "/_sim/journal?dialect=xpro"))[1]
    assert notes[("xpro", "amount sent as a string")]["requests"] == [journal[-1]["seq"]]
    assert rep["settings"]["conformance"] == {"xpro": "lenient", "fizzy": "lenient", "ambslot": "lenient"}
    assert h.sim.ledger.invariants()["ok"]


async def test_lenient_still_refuses_what_is_ambiguous(start: Start) -> None:
    h = await start(cfg={"fizzy": {"conformance": "lenient"}})
    payload = h.fizzy.money("p-1", 5, jackpotAmount=Decimal(6))
    del payload["cashAmount"]
    assert (await h.fizzy.call("/wallet/withdraw", payload)).status == 400  # jackpot larger than amount
    payload = h.fizzy.money("p-1", 5)
    del payload["amount"]
    assert (await h.fizzy.call("/wallet/withdraw", payload)).status == 400  # amount itself: never guessed


async def test_a_conformance_mode_outside_the_two_is_refused() -> None:
    from simulator import config
    from simulator.errors import SourceError

    with pytest.raises(SourceError, match="conformance"):
        config.from_dict({"fizzy": {"conformance": "loose"}})


# the other surfaces: CLI and pytest plugin


async def test_cli_report_shows_a_table_and_exits_by_the_verdict(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    h = await lost_xpro_deposit(start)
    assert (await h.xpro.transfer("player001", 10, "D3-again")).json["code"] == 0
    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url]) == 1
    out = capsys.readouterr().out
    assert "NOT OK" in out and "double_spend" in out and "FAIL" in out
    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url, "--format", "junit"]) == 1
    assert ET.fromstring(capsys.readouterr().out).get("failures") == "1"
    await h.admin("POST", "/_sim/reset")
    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url]) == 0
    assert "Nothing to report" in capsys.readouterr().out


def test_cli_report_says_when_the_simulator_is_not_there(capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.server.serve import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # a port nobody listens on
    assert cli.main(["report", "--url", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot reach the simulator" in capsys.readouterr().err


PLUGIN_TESTS = """
import json
import urllib.request

import pytest


def bet(url, round_id, txn):
    body = {
        "username": "member001", "agent": "demo", "game": "G", "gameId": "G", "roundId": round_id,
        "amount": 10, "currency": "THB", "transactionId": txn, "timestamp": "2026-01-01T00:00:00.000",
        "isEndRound": False, "featureBuy": False,
    }
    request = urllib.request.Request(url + "/bet", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())

LOST = "name: lost\\nrules:\\n  - {match: {operation: bet}, apply: true, fault: empty, times: 1}\\n"


def test_clean(wallet_simulator):
    wallet_simulator.load_scenario(LOST)
    with pytest.raises(Exception):
        bet(wallet_simulator.url, "r1", "t1")
    assert bet(wallet_simulator.url, "r1", "t1")["status"]["code"] == 0
    assert wallet_simulator.assert_clean()["summary"]["by_verdict"]["recovered"] == 1


def test_dirty(wallet_simulator):
    wallet_simulator.load_scenario(LOST)
    with pytest.raises(Exception):
        bet(wallet_simulator.url, "r1", "t1")
    assert wallet_simulator.report()["summary"]["by_verdict"]["abandoned"] == 1
    wallet_simulator.assert_clean()
"""


def test_plugin_report_and_assert_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the client did 1 thing(s) wrong:*", "*[[]fail[]] ambslot abandoned: #* bet *"])


# the verdict table and the journal's horizon


@pytest.mark.parametrize(
    ("dialect", "operation", "verdict", "severity"),
    [
        ("xpro", "deposit", "recovered", "info"),
        ("xpro", "withdraw", "gave_up_cleanly", "info"),
        ("xpro", "cashout", "abandoned", "fail"),
        ("xpro", "deposit", "double_spend", "fail"),
        ("xpro", "deposit", "unsafe_resend", "warn"),
        ("fizzy", "withdraw", "gave_up_cleanly", "info"),
        ("fizzy", "deposit", "gave_up_cleanly", "fail"),
        ("fizzy", "rollback", "gave_up_cleanly", "fail"),
        ("ambslot", "bet", "gave_up_cleanly", "info"),
        ("ambslot", "settle", "gave_up_cleanly", "info"),
        ("ambslot", "payout", "gave_up_cleanly", "fail"),
        ("ambslot", "cancel", "gave_up_cleanly", "fail"),
        ("ambslot", "cancel", "recovered", "info"),
    ],
)
def test_which_verdicts_pass_per_dialect(dialect: str, operation: str, verdict: str, severity: str) -> None:
    from simulator.scorecard.model import verdict_severity

    assert verdict_severity(dialect, operation, verdict) == severity


async def test_the_report_says_when_the_journal_has_forgotten_requests(start: Start) -> None:
    h = await start(cfg={"server": {"journal_size": 3}})
    for n in range(3):
        await h.amb.balance(f"m{n}")
    coverage = (await report(h))["journal"]
    assert coverage["full"] is True and coverage["held"] == 3 and "aged out" in coverage["note"]
    await h.amb.balance("m9")
    assert (await report(h))["journal"]["first"] == 2


async def test_an_unknown_report_format_is_refused(h: Harness) -> None:
    status, body = await h.admin("GET", "/_sim/report?format=html")
    assert status == 400 and "json, junit" in body["error"]


async def test_lenient_numeric_strings_keep_the_request_as_sent_in_the_journal(start: Start) -> None:
    h = await start(cfg={"fizzy": {"conformance": "lenient"}})
    payload = h.fizzy.money("p-1", 5, txn="W-1")
    payload.update(amount="5.50", cashAmount="5.50")
    assert (await h.fizzy.call("/wallet/withdraw", payload)).json["balance"] == Decimal("994.5")
    journal = (await h.admin("GET", "/_sim/journal"))[1]
    assert journal[-1]["request"]["amount"] == "5.50"
    assert {"amount sent as a string", "cashAmount sent as a string"} <= set(checks(await report(h)))
