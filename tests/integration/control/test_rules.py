"""Run-time rule control through ``/_sim/rules``: add, replace, remove one rule without a reset."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Harness, Start

pytestmark = pytest.mark.both_stores  # every test here runs on memory and on a real Redis


SCENARIO = """name: two rules
players:
  - {dialect: ambslot, username: member001, balance: 100}
rules:
  - name: slow-balance
    match: {dialect: ambslot, operation: balance}
    delay: 1ms
  - name: never
    match: {dialect: ambslot, operation: payout}
    respond: {error: internal_error}
"""


async def bet_code(h: Harness, round_id: str, amount: int = 1) -> int:
    code: int = (await h.amb.bet("member001", round_id, amount, txn=f"T-{round_id}")).json["status"]["code"]
    return code


async def rules(h: Harness) -> dict[str, Any]:
    status, body = await h.admin("GET", "/_sim/rules")
    assert status == 200
    result: dict[str, Any] = body
    return result


async def test_list_counts_hits_and_names_the_rules_that_never_fired(start: Start) -> None:
    h = await start(scenario=SCENARIO, sleep=_no_sleep)
    await h.amb.balance("member001")
    await h.amb.balance("member001")
    listed = await rules(h)
    assert [(r["name"], r["position"], r["hits"], r["remaining"]) for r in listed["rules"]] == [
        ("slow-balance", 0, 2, None),
        ("never", 1, 0, None),
    ]
    assert listed["rules"][1]["definition"] == {
        "name": "never",
        "match": {"dialect": "ambslot", "operation": "payout"},
        "respond": {"error": "internal_error"},
    }
    assert listed["never_fired"] == ["never"]


async def test_an_added_rule_fires_once_and_leaves_ledger_and_other_counters_alone(start: Start) -> None:
    h = await start(scenario=SCENARIO, sleep=_no_sleep)
    await h.amb.balance("member001")
    assert await bet_code(h, "R1", 10) == 0
    rule = {"name": "fail-next-bet", "match": {"player": "member001", "operation": "bet"}, "times": 1}
    status, body = await h.admin("POST", "/_sim/rules?position=0", {**rule, "respond": {"error": "insufficient_funds"}})
    assert (status, body) == (201, {"ok": True, "name": "fail-next-bet", "position": 0})
    assert await bet_code(h, "R2") == 800
    assert await bet_code(h, "R3") == 0
    listed = await rules(h)
    assert [(r["name"], r["hits"], r["remaining"]) for r in listed["rules"]] == [
        ("fail-next-bet", 1, 0),
        ("slow-balance", 1, None),
        ("never", 0, None),
    ]
    assert (await h.player_view("ambslot", "member001", "demo"))["balance"] == 89  # 100 - 10 - 1, not reset
    assert len(await h.transactions()) == 2


async def test_default_position_is_last_and_yaml_is_accepted(start: Start) -> None:
    h = await start(scenario=SCENARIO, sleep=_no_sleep)
    status, body = await h.admin("POST", "/_sim/rules", text="name: late\nmatch: {operation: cancel}\nfault: drop\n")
    assert (status, body["position"]) == (201, 2)
    assert [r["name"] for r in (await rules(h))["rules"]] == ["slow-balance", "never", "late"]


async def test_an_invalid_rule_answers_its_problems_by_line_and_changes_nothing(start: Start) -> None:
    h = await start(scenario=SCENARIO)
    text = "name: bad\nmatch:\n  dialect: ambslot\n  operation: withdraw\nrespond: {error: insufficient_funds}\n"
    status, body = await h.admin("POST", "/_sim/rules", text=text)
    assert status == 400
    assert body["problems"] == [
        "(POST /_sim/rules):4: match.operation: ambslot has no operation 'withdraw' "
        "(balance, bet, cancel, payout, settle)"
    ]
    status, body = await h.admin("POST", "/_sim/rules", text="name: x\nmatch: {operation: bet}\nrespnd: {}\n")
    assert status == 400 and body["problems"][0].startswith("(POST /_sim/rules):3: respnd: unknown key 'respnd'")
    status, body = await h.admin("POST", "/_sim/rules", {"match": {"operation": "bet"}, "fault": "drop"})
    assert status == 400 and "needs a name" in body["problems"][0]
    assert (await h.admin("POST", "/_sim/rules", text=""))[0] == 400
    assert len((await rules(h))["rules"]) == 2


async def test_duplicate_name_and_bad_position_are_refused(start: Start) -> None:
    h = await start(scenario=SCENARIO)
    status, body = await h.admin("POST", "/_sim/rules", {"name": "never", "fault": "drop"})
    assert status == 409 and "exists" in body["error"]
    assert (await h.admin("POST", "/_sim/rules?position=9", {"name": "n", "fault": "drop"}))[0] == 400
    assert (await h.admin("POST", "/_sim/rules?position=-1", {"name": "n", "fault": "drop"}))[0] == 400


async def test_replace_keeps_the_position_and_restarts_only_its_own_counter(start: Start) -> None:
    h = await start(scenario=SCENARIO, sleep=_no_sleep)
    await h.amb.balance("member001")
    status, body = await h.admin("PUT", "/_sim/rules/never", {"match": {"operation": "bet"}, "fault": "empty"})
    assert (status, body) == (200, {"ok": True, "name": "never", "position": 1})
    listed = await rules(h)
    assert [(r["name"], r["hits"]) for r in listed["rules"]] == [("slow-balance", 1), ("never", 0)]
    assert listed["rules"][1]["definition"]["fault"] == "empty"
    status, body = await h.admin("PUT", "/_sim/rules/never", {"name": "slow-balance", "fault": "drop"})
    assert status == 409
    status, body = await h.admin("PUT", "/_sim/rules/renamed", {"fault": "drop"})
    assert status == 404 and "no rule named 'renamed'" in body["error"]


async def test_remove_and_reset(start: Start) -> None:
    h = await start(scenario=SCENARIO, sleep=_no_sleep)
    await h.amb.balance("member001")
    status, body = await h.admin("DELETE", "/_sim/rules/never")
    assert (status, body) == (200, {"ok": True, "name": "never", "hits": 0})
    assert (await h.admin("DELETE", "/_sim/rules/never"))[0] == 404
    assert [r["hits"] for r in (await rules(h))["rules"]] == [1]
    assert (await h.admin("POST", "/_sim/reset"))[0] == 200
    assert (await rules(h)) == {
        "rules": [
            {
                "name": "slow-balance",
                "position": 0,
                "hits": 0,
                "seen": 0,
                "remaining": None,
                "definition": {
                    "name": "slow-balance",
                    "match": {"dialect": "ambslot", "operation": "balance"},
                    "delay": "1ms",
                },
            }
        ],
        "never_fired": ["slow-balance"],
    }


async def test_unnamed_file_rules_are_addressed_by_their_index_name(start: Start) -> None:
    h = await start(scenario="name: s\nrules:\n  - {match: {operation: bet}, fault: drop}\n")
    assert [r["name"] for r in (await rules(h))["rules"]] == ["rules[0]"]
    assert (await h.admin("DELETE", "/_sim/rules/rules[0]"))[0] == 200


async def _no_sleep(seconds: float) -> None:
    return None


async def test_a_request_held_by_a_rule_finishes_consistently_when_the_rule_goes(start: Start) -> None:
    held, release = asyncio.Event(), asyncio.Event()

    async def gate(seconds: float) -> None:
        held.set()
        await release.wait()

    h = await start(scenario=SCENARIO, sleep=gate)
    rule = {"name": "slow/bet", "match": {"operation": "bet"}, "delay": "5s"}
    assert (await h.admin("POST", "/_sim/rules?position=0", rule))[0] == 201
    pending = asyncio.ensure_future(bet_code(h, "R1", 10))
    await held.wait()
    assert (await h.admin("DELETE", "/_sim/rules/slow%2Fbet"))[0] == 200  # a name with a slash is addressable
    assert await bet_code(h, "R2", 1) == 0  # not held: the rule is gone for the next request
    release.set()
    assert await pending == 0
    assert [(e.transaction, e.rule) for e in h.sim.journal] == [("T-R2", None), ("T-R1", "slow/bet")]
    assert (await h.player_view("ambslot", "member001", "demo"))["balance"] == 89
    assert (await h.invariants())["ok"]
