"""Status checks tell the truth (through HTTP): check/transactions for a transfer still in flight answers 35,
never 4; a rule that does not name a status check leaves it alone; the automatic "pending" names the id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import STORES, Harness, Start
from tests.integration.wallets.test_scenarios_http import Gate, until

pytestmark = pytest.mark.asyncio
SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"

SLOW = """\
name: slow
players:
  - {dialect: xpro, username: player001, balance: 100}
rules:
  - name: hold
    match: {dialect: xpro, operation: deposit, transaction: "^SLOW-"}
    delay: 30s
"""


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_check_of_a_transfer_in_flight_answers_35_then_the_transfer(start: Start) -> None:
    gate = Gate()
    h = await start(scenario=SLOW, sleep=gate)
    await h.xpro.authenticate()
    held = asyncio.ensure_future(h.xpro.transfer("player001", 20, "SLOW-1"))
    await until(lambda: gate.delays == [30.0])
    check = await h.xpro.check("player001", "SLOW-1")
    assert check.json["code"] == 35 and check.json["message"] == "The transaction is pending"
    assert check.headers["X-Sim-Detail"] == "transaction 'SLOW-1' is still being processed"
    retry = await h.xpro.transfer("player001", 20, "SLOW-1")
    assert retry.json["code"] == 35  # the automatic pending names the id, not ''
    assert retry.headers["X-Sim-Detail"] == "transaction 'SLOW-1' is still being processed"
    assert (await h.xpro.check("player001", "NEVER-1")).json["code"] == 4  # unknown and not in flight
    gate.release()
    assert (await held).json["code"] == 0
    assert (await h.xpro.check("player001", "SLOW-1")).json["data"]["amount"] == 20


@pytest.mark.parametrize("store", ["redis"])
async def test_check_on_another_replica_sees_the_transfer_in_flight(start: Start) -> None:
    gate = Gate()
    a = await start(scenario=SLOW, sleep=gate)
    b = await start(scenario=SLOW, store_url=a.sim.settings.store)
    await a.xpro.authenticate()
    await b.xpro.authenticate()
    held = asyncio.ensure_future(a.xpro.transfer("player001", 20, "SLOW-2"))
    await until(lambda: gate.delays == [30.0])
    assert (await b.xpro.check("player001", "SLOW-2")).json["code"] == 35
    gate.release()
    assert (await held).json["code"] == 0


async def test_rules_by_transaction_or_player_leave_status_checks_alone(start: Start) -> None:
    h = await start(scenario_file=str(SCENARIOS / "duplicate_submission.yaml"))
    await h.xpro.authenticate()
    assert (await h.xpro.transfer("player001", 5, "DUP-1")).json["code"] == 3  # the rule fires on the transfer
    check = await h.xpro.check("player001", "DUP-1")
    assert check.json["code"] == 4 and "X-Sim-Rule" not in check.headers  # the truth: never applied
    assert (await h.xpro.balance("player001")).json["data"]["balance"] == 100


NAMED = """\
name: s
players:
  - {dialect: xpro, username: player001, balance: 100}
  - {dialect: fizzy, playerId: p-1, balance: 100}
rules:
  - name: any-player001
    match: {dialect: xpro, player: player001}
    respond: {code: 7}
  - name: check-answers-7
    match: {dialect: xpro, operation: check}
    respond: {code: 7}
  - name: fizzy-by-player
    match: {dialect: fizzy, player: p-1}
    respond: {error: timeout}
"""


async def test_a_rule_that_names_the_status_check_applies_to_it(start: Start) -> None:
    h = await start(scenario=NAMED)
    await h.xpro.authenticate()
    assert (await h.xpro.balance("player001")).json["code"] == 0  # a player-only rule: not a status check
    assert (await h.xpro.transfer("player001", 5, "T-1")).json["code"] == 7  # ... but the transfer
    assert (await h.xpro.check("player001", "T-1")).json["code"] == 7  # named: it applies
    assert (await h.fizzy.balance("p-1")).status == 200
    assert (await h.fizzy.withdraw("p-1", 5)).json["code"] == "ERROR_TIMEOUT"
    status, body = await h.admin("POST", "/_sim/journal/verify", {"match": {"player": "player001"}, "count": 1})
    assert status == 200, body  # verify counts the same way: the transfer, not the balance nor the check


async def test_verify_counts_a_status_check_only_when_named(h: Harness) -> None:
    await h.xpro.authenticate()
    await h.xpro.create_member("player001")
    await h.xpro.balance("player001")
    verify = {"match": {"player": "player001"}, "count": 1}  # the create, not the balance
    assert (await h.admin("POST", "/_sim/journal/verify", verify))[0] == 200
    named = {"match": {"player": "player001", "operation": "balance"}, "count": 1}
    assert (await h.admin("POST", "/_sim/journal/verify", named))[0] == 200
