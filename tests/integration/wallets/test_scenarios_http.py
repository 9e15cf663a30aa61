"""Scenarios over HTTP: every example file proves its effect on the wire, every neutral name and raw code
renders in each dialect's exact form, every fault does what it says, and injected errors move no money
unless ``apply: true``."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.dialects import codes
from tests.conftest import Harness, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis
SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


class Gate:
    """Stands in for asyncio.sleep: records every injected delay and holds it until released."""

    def __init__(self, hold: bool = True) -> None:
        self.delays: list[float] = []
        self.event = asyncio.Event()
        if not hold:
            self.event.set()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.event.wait()

    def release(self) -> None:
        self.event.set()


async def until(predicate: Callable[[], bool | Awaitable[bool]], attempts: int = 1000) -> None:
    """Poll every 5 ms (up to 1000 tries) for a state, instead of guessing how long it takes; ``predicate``
    may be async (a control-API read, ``h.sim.in_flight(...)``)."""
    for _ in range(attempts):
        result = predicate()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def xpro_balance(h: Harness, user: str = "player001") -> Decimal:
    value = (await h.xpro.balance(user)).json["data"]["balance"]
    assert isinstance(value, Decimal)
    return value


async def fizzy_balance(h: Harness, player: str = "p-1") -> Decimal:
    value = (await h.fizzy.balance(player)).json["balance"]
    assert isinstance(value, Decimal)
    return value


async def amb_balance(h: Harness, user: str = "member001") -> Decimal:
    value = (await h.amb.balance(user)).json["data"]["wallet"]["balance"]
    assert isinstance(value, Decimal)
    return value


async def scenario(start: Start, name: str, **options: Any) -> Harness:
    h = await start(scenario_file=str(SCENARIOS / f"{name}.yaml"), **options)
    await h.xpro.authenticate()
    return h


# the example files


async def test_happy_path(start: Start) -> None:
    h = await scenario(start, "happy_path")
    assert await xpro_balance(h) == 1000
    assert (await h.xpro.transfer("player001", "-10.5", "W1")).json["data"]["balance"] == Decimal("989.5")
    assert await fizzy_balance(h) == 250
    assert (await h.fizzy.withdraw("p-1", 50, txn="w1")).json["balance"] == 200
    assert await amb_balance(h) == 10000
    assert (await h.amb.bet("member001", "R1", 100)).json["status"]["code"] == 0
    assert (await h.invariants())["ok"] and not any(e.rule for e in h.sim.journal)


async def test_insufficient_funds(start: Start) -> None:
    h = await scenario(start, "insufficient_funds")
    reply = await h.xpro.transfer("player001", -1, "W1")
    assert reply.json["code"] == 2 and reply.json["message"] == "The balance is not enough."
    assert reply.headers["X-Sim-Rule"] == "xpro-broke"
    assert (await h.xpro.cashout("player001", "C1")).json["code"] == 2
    assert (await h.xpro.transfer("player001", 5, "D1")).json["code"] == 0  # deposits are not matched
    assert await xpro_balance(h) == 505
    assert (await h.xpro.transfer("broke001", -1, "W2")).json["code"] == 2  # really broke
    fizzy = await h.fizzy.withdraw("p-1", 1)
    assert fizzy.status == 400 and fizzy.json["code"] == "ERROR_TRANSACTION_INSUFFICIENT_FUNDS"
    assert (await h.amb.bet("member001", "R1", 1)).json["status"]["code"] == 800
    assert await fizzy_balance(h) == 500 and await amb_balance(h) == 500
    assert [e.rule for e in h.sim.journal.query(rule="fizzy-broke")] == ["fizzy-broke"]


async def test_duplicate_submission(start: Start) -> None:
    h = await scenario(start, "duplicate_submission")
    assert (await h.xpro.transfer("player001", 5, "DUP-1")).json["code"] == 3
    fizzy = await h.fizzy.withdraw("p-1", 5, txn="DUP-2")
    assert fizzy.status == 400 and fizzy.json["code"] == "ERROR_TRANSACTION_DUPLICATE"
    assert (await h.amb.bet("member001", "R1", 5, txn="DUP-3")).json["status"]["code"] == 900
    assert await fizzy_balance(h) == 100 and await amb_balance(h) == 100
    assert await xpro_balance(h) == 100
    assert (await h.xpro.transfer("player001", 5, "A1")).json["code"] == 0
    second = await h.xpro.transfer("player001", 7, "A2")  # applied, then answered as a duplicate
    assert second.json["code"] == 3
    assert await xpro_balance(h) == 112
    assert (await h.xpro.check("player001", "A2")).json["data"]["amount"] == 7


async def test_wallet_locked(start: Start) -> None:
    h = await scenario(start, "wallet_locked")
    assert (await h.xpro.transfer("locked001", 5, "L1")).json["code"] == 20
    assert [(await h.xpro.transfer("player001", 5, f"T{i}")).json["code"] for i in range(3)] == [20, 20, 0]
    fizzy = await h.fizzy.withdraw("locked-1", 5)
    assert fizzy.json["code"] == "ERROR_BAD_REQUEST_PLAYER_BLOCKED"
    assert (await h.amb.bet("locked001", "R1", 5)).json["status"]["code"] == 999
    assert await xpro_balance(h) == 105 and await xpro_balance(h, "locked001") == 100


async def test_transaction_pending_injected_then_natural(start: Start) -> None:
    gate = Gate()
    h = await scenario(start, "transaction_pending", sleep=gate)
    assert [(await h.xpro.transfer("player001", 5, "PEND-1")).json["code"] for _ in range(3)] == [35, 35, 0]
    assert await xpro_balance(h) == 105
    first = asyncio.ensure_future(h.xpro.transfer("player001", 10, "SLOW-1"))
    await until(lambda: h.sim.in_flight("xpro", "demo", "SLOW-1"))
    retry = await h.xpro.transfer("player001", 10, "SLOW-1")
    assert retry.json["code"] == 35 and retry.json["message"] == "The transaction is pending"
    gate.release()
    assert (await first).json["code"] == 0
    assert (await h.xpro.transfer("player001", 10, "SLOW-1")).json["code"] == 3
    assert await xpro_balance(h) == 115 and gate.delays == [1.5, 1.5]


async def test_timeouts(start: Start) -> None:
    gate = Gate()
    h = await scenario(start, "timeouts", sleep=gate)
    fizzy = await h.fizzy.withdraw("p-1", 5, round_id="TIMEOUT-1")
    assert fizzy.status == 500 and fizzy.json["code"] == "ERROR_TIMEOUT"
    assert (await h.fizzy.withdraw("p-1", 5, round_id="other")).status == 200
    assert (await h.amb.payout("member001", "R1", 5)).json["status"]["code"] == 1601
    assert await fizzy_balance(h) == 95 and await amb_balance(h) == 100
    with pytest.raises(asyncio.TimeoutError):  # the client gives up long before the 35 s are over
        await asyncio.wait_for(h.xpro.transfer("player001", 20, "HANG-1"), 0.5)
    await until(lambda: gate.delays == [35.0])
    assert (await h.xpro.check("player001", "HANG-1")).json["code"] == 35  # still in flight: never 4
    assert (await h.xpro.transfer("player001", 20, "HANG-1")).json["code"] == 35  # still processing
    gate.release()
    await until(lambda: booked(h, "xpro", "HANG-1"))
    assert (await h.xpro.check("player001", "HANG-1")).json["data"]["amount"] == 20
    assert await xpro_balance(h) == 120


async def test_applied_but_lost(start: Start) -> None:
    h = await scenario(start, "applied_but_lost")
    for n in (1, 2):
        assert (await h.xpro.transfer("player001", 10, f"D{n}")).json["code"] == 0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await h.xpro.transfer("player001", 10, "D3")
    assert await xpro_balance(h) == 130  # applied although the answer was lost
    assert (await h.xpro.check("player001", "D3")).json["data"]["amount"] == 10
    payload = h.fizzy.money("p-1", 25, txn="LOST-1")
    with pytest.raises(aiohttp.ClientOSError):
        await h.fizzy.call("/wallet/withdraw", payload)
    replay = await h.fizzy.call("/wallet/withdraw", payload)  # the provider's retry
    assert replay.status == 200 and replay.json["balance"] == 75 and await fizzy_balance(h) == 75
    amb_payload = h.amb.fields("member001", "R1", 40, turnover=Decimal(0))
    gateway = await h.amb.call("/payout", amb_payload)
    assert gateway.status == 502 and "502 Bad Gateway" in gateway.body
    assert (await h.amb.call("/payout", amb_payload)).json["data"]["balance"] == {"before": 100, "after": 140}
    assert (await h.invariants())["ok"]


async def test_flaky_network_is_reproducible_and_applies_nothing_it_breaks(start: Start) -> None:
    # no helper that authenticates first: the same requests, in the same order, must get the same answers
    h = await start(scenario_file=str(SCENARIOS / "flaky_network.yaml"), sleep=Gate(hold=False))

    async def run() -> list[str]:
        kinds = []
        for i in range(150):
            try:
                reply = await h.amb.bet("member001", f"R{i}", 1, txn=f"T{i}")
            except aiohttp.ClientOSError:
                kinds.append("reset")
                continue
            if reply.status == 502:
                kinds.append("gateway")
            elif reply.body == "":
                kinds.append("empty")
            elif isinstance(reply.body, str):
                kinds.append("malformed")
            else:
                assert reply.json["status"]["code"] == 0
                kinds.append("ok")
        return kinds

    first = await run()
    assert {"ok", "reset", "gateway", "empty", "malformed"} == set(first)
    assert (await h.player_view("ambslot", "member001", "demo"))["balance"] == 1000 - first.count("ok")
    assert (await h.admin("POST", "/_sim/reset"))[0] == 200
    assert await run() == first
    jitter = [e.delay for e in h.sim.journal if e.rule == "jitter"]
    assert jitter and all(0 < d <= 0.04 for d in jitter)


async def test_large_player_base(start: Start) -> None:
    h = await scenario(start, "large_player_base")
    players = await h.players()
    counts = {d: sum(1 for p in players if p["dialect"] == d) for d in ("xpro", "fizzy", "ambslot")}
    assert counts == {"xpro": 1000, "fizzy": 2000, "ambslot": 1000}
    someone = next(p for p in players if p["dialect"] == "fizzy")
    assert Decimal(10) <= someone["balance"] <= Decimal(5000)
    reply = await h.fizzy.withdraw(someone["player"], someone["balance"], txn="all-in")
    assert reply.status == 200 and reply.json["balance"] == 0
    member = next(p for p in players if p["dialect"] == "xpro")
    assert (await h.xpro.balance(member["player"])).json["data"]["balance"] == member["balance"]
    again = await scenario(start, "large_player_base")
    assert [p["player"] for p in await again.players()] == [p["player"] for p in players]


# every neutral name and every raw code, in each dialect's wire form


MONEY_OPERATION = {"xpro": "deposit", "fizzy": "deposit", "ambslot": "payout"}
FAULT_OPERATION = {"xpro": "deposit", "fizzy": "withdraw", "ambslot": "bet"}


def respond_rule(dialect: str, respond: dict[str, Any], apply: bool = False) -> str:
    match = {"dialect": dialect, "operation": MONEY_OPERATION[dialect]}
    return json.dumps({"name": "t", "rules": [{"name": "inject", "match": match, "respond": respond, "apply": apply}]})


async def money_call(h: Harness, dialect: str) -> Any:
    if dialect == "xpro":
        return await h.xpro.transfer("p1", 10, "T1")
    if dialect == "fizzy":
        return await h.fizzy.deposit("p-1", 10, "no-such-withdraw")
    return await h.amb.payout("member001", "R1", 10)


async def balance_after(h: Harness, dialect: str) -> Decimal:
    """The balance the control API shows (first tenant), or -1 when there is no such player."""
    player = await h.find_player(dialect, {"xpro": "p1", "fizzy": "p-1", "ambslot": "member001"}[dialect])
    return player["balance"] if player else Decimal(-1)


async def booked(h: Harness, dialect: str, txn_id: str) -> bool:
    """Whether the ledger (as the control API shows it) has a transaction with this id."""
    return any(t["transaction"] == txn_id for t in await h.transactions(dialect=dialect))


def check_wire(dialect: str, reply: Any, code: Any, status: int, message: str) -> None:
    assert reply.status == status, reply.body
    if dialect == "xpro":
        assert reply.json["code"] == code and reply.json["message"] == message and "data" not in reply.json
    elif dialect == "fizzy":
        assert reply.json["code"] == code and reply.json["description"] == message and reply.json["traceId"]
    else:
        assert reply.json["status"] == {"code": code, "message": message} and "data" not in reply.json


CASES = [(d, n) for d in ("xpro", "fizzy", "ambslot") for n in codes.NEUTRAL_NAMES]
RAW = [(d, c) for d in ("xpro", "fizzy", "ambslot") for c in codes.CODES[d] if c != 0]

PLAYERS = """players:
  - {dialect: xpro, username: p1, balance: 100}
  - {dialect: fizzy, playerId: p-1, balance: 100}
  - {dialect: ambslot, username: member001, balance: 100}
"""


async def harness_with(start: Start, rules: str) -> Harness:
    data = json.loads(rules)
    text = f"name: t\n{PLAYERS}rules: {json.dumps(data['rules'])}\n"
    h = await start(scenario=text)
    await h.xpro.authenticate()
    return h


@pytest.mark.parametrize(("dialect", "neutral"), CASES)
async def test_every_neutral_name_in_every_dialect(start: Start, dialect: str, neutral: str) -> None:
    h = await harness_with(start, respond_rule(dialect, {"error": neutral}))
    reply = await money_call(h, dialect)
    code = codes.NEUTRAL[dialect][neutral]
    status, message = codes.CODES[dialect][code]
    check_wire(dialect, reply, code, status, message)
    assert await balance_after(h, dialect) == 100


@pytest.mark.parametrize(("dialect", "code"), RAW)
async def test_every_documented_code_is_reachable(start: Start, dialect: str, code: Any) -> None:
    h = await harness_with(start, respond_rule(dialect, {"code": code}))
    status, message = codes.CODES[dialect][code]
    check_wire(dialect, await money_call(h, dialect), code, status, message)


async def test_message_and_http_status_overrides(start: Start) -> None:
    h = await harness_with(
        start, respond_rule("fizzy", {"code": "ERROR_UNKNOWN_ERROR", "message": "db down", "http_status": 400})
    )
    check_wire("fizzy", await money_call(h, "fizzy"), "ERROR_UNKNOWN_ERROR", 400, "db down")


async def test_apply_true_moves_money_and_still_answers_the_error(start: Start) -> None:
    h = await harness_with(start, respond_rule("xpro", {"error": "timeout"}, apply=True))
    assert (await h.xpro.transfer("p1", 10, "T1")).json["code"] == 35
    assert await balance_after(h, "xpro") == 110
    assert (await h.xpro.transfer("p1", 10, "T1")).json["code"] == 35  # the rule still fires on the retry
    assert await balance_after(h, "xpro") == 110  # but nothing is applied twice


# faults


FAULT_CALLS = ("xpro", "fizzy", "ambslot")


async def faulted(h: Harness, dialect: str) -> Any:
    if dialect == "xpro":
        return await h.xpro.transfer("p1", 10, "T1")
    if dialect == "fizzy":
        return await h.fizzy.withdraw("p-1", 10, txn="w1")
    return await h.amb.bet("member001", "R1", 10, txn="b1")


@pytest.mark.parametrize("dialect", FAULT_CALLS)
@pytest.mark.parametrize("apply", [False, True])
async def test_faults(start: Start, dialect: str, apply: bool) -> None:
    effect = Decimal(10) if dialect == "xpro" else Decimal(-10)
    for fault, expected in (
        ("drop", aiohttp.ServerDisconnectedError),
        ("reset", aiohttp.ClientOSError),
        ("empty", ""),
        ("malformed", "malformed"),
        ("gateway", 502),
    ):
        match = {"dialect": dialect, "operation": FAULT_OPERATION[dialect]}
        rules = json.dumps({"rules": [{"match": match, "fault": fault, "apply": apply}]})
        h = await harness_with(start, rules)
        if isinstance(expected, type):
            with pytest.raises(expected):
                await faulted(h, dialect)
        else:
            reply = await faulted(h, dialect)
            if expected == "":
                assert reply.status == 200 and reply.body == ""
            elif expected == "malformed":
                assert reply.status == 200 and isinstance(reply.body, str) and reply.body.startswith("{")
                with pytest.raises(json.JSONDecodeError):
                    json.loads(reply.body)
            else:
                assert reply.status == 502 and "<html>" in reply.body
        assert await balance_after(h, dialect) == 100 + (effect if apply else 0), fault
        entry = list(h.sim.journal)[-1]
        assert entry.fault == fault and entry.rule == "rules[0]"
