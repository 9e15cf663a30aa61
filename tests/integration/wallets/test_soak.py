"""Concurrency soak: thousands of mixed operations from many concurrent clients over a handful of players,
with duplicates, rollbacks and cancels. Afterwards every balance equals what the transaction log implies,
nothing is applied twice, and what the clients were told agrees with the ledger."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Harness, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # the soak on memory and on a real Redis

WORKERS = 24
OPS_PER_WORKER = 150  # 3,600 operations
PLAYERS = 4

SCENARIO = "name: soak\nplayers:\n" + "".join(
    f"  - {{dialect: xpro, username: x{n}, balance: 200}}\n"
    f"  - {{dialect: fizzy, playerId: f{n}, balance: 200}}\n"
    f"  - {{dialect: ambslot, username: a{n}, balance: 200}}\n"
    for n in range(PLAYERS)
)


class Tally:
    """What the clients were told: the amounts of distinct successful operations, by kind."""

    def __init__(self) -> None:
        self.moved: dict[str, Decimal] = defaultdict(Decimal)
        self.succeeded: dict[str, set[str]] = defaultdict(set)
        self.answers: dict[str, Any] = {}

    def success(self, kind: str, txn: str, amount: Decimal, answer: Any) -> None:
        if txn in self.succeeded[kind]:
            assert self.answers[txn] == answer, f"a replay of {txn} answered differently"
            return
        self.succeeded[kind].add(txn)
        self.answers[txn] = answer
        self.moved[kind] += amount


async def worker(h: Harness, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    mine: list[tuple[str, Any]] = []  # requests to repeat: (kind, payload)
    for n in range(OPS_PER_WORKER):
        p = rng.randrange(PLAYERS)
        amount = Decimal(rng.randint(1, 4000)).scaleb(-2)
        txn = f"w{seed}-{n}"
        choice = rng.random()
        if mine and choice < 0.2:  # a duplicate submission of something this worker sent
            kind, payload = rng.choice(mine)
        elif choice < 0.35:
            kind, payload = (
                "xpro",
                {"username": f"x{p}", "amount": amount if rng.random() < 0.5 else -amount, "transId": txn},
            )
        elif choice < 0.55:
            kind, payload = "withdraw", h.fizzy.money(f"f{p}", amount, txn=txn, round_id=txn, session=f"s{p}")
        elif choice < 0.65 and mine:
            ref = rng.choice(
                [m for m in mine if m[0] == "withdraw"] or [("", {"transactionId": "none", "playerId": f"f{p}"})]
            )[1]
            kind = "deposit" if rng.random() < 0.5 else "rollback"
            base = {
                "transactionId": txn,
                "withdrawTransactionId": ref["transactionId"],
                "playerId": ref["playerId"],
                "sessionId": f"s{ref['playerId'][1:]}",
                "gameId": "game-1",
                "gameRoundId": ref["transactionId"],
            }
            payload = (
                base
                if kind == "rollback"
                else {**h.fizzy.money(ref["playerId"], amount, txn=txn, session=base["sessionId"]), **base}
            )
        elif choice < 0.85:
            kind, payload = "bet", h.amb.fields(f"a{p}", f"r{seed}-{n}", amount, txn=txn)
        else:
            bet = rng.choice([m for m in mine if m[0] == "bet"] or [("", h.amb.fields(f"a{p}", "nothing", 0))])[1]
            kind = "cancel" if rng.random() < 0.5 else "payout"
            payload = h.amb.fields(bet["username"], bet["roundId"], amount, txn=txn, turnover=bet["amount"])
        mine.append((kind, payload))
        await send(h, kind, payload, tally)


async def send(h: Harness, kind: str, payload: Any, tally: Tally) -> None:
    if kind == "xpro":
        body = (await h.xpro.call("/v2/members/transaction", payload)).json
        if body["code"] == 0:
            tally.success("xpro", payload["transId"], payload["amount"], body)
        else:
            assert body["code"] in (2, 3, 35), body
        return
    if kind in ("withdraw", "deposit", "rollback"):
        reply = await h.fizzy.call(f"/wallet/{kind}", payload)
        if reply.status == 200:
            tally.success(kind, payload["transactionId"], payload.get("amount", Decimal(0)), reply.json)
        else:
            assert reply.status in (400, 500), reply.body
        return
    reply = await h.amb.call(f"/{kind}", payload)
    code = reply.json["status"]["code"]
    if code == 0:
        tally.success(kind, payload["transactionId"], payload["amount"], reply.json)
    else:
        assert code in (800, 900, 997, 1601), reply.json


async def test_soak(start: Start) -> None:
    h = await start(scenario=SCENARIO)
    await h.xpro.authenticate()
    tally = Tally()
    await asyncio.gather(*(worker(h, seed, tally) for seed in range(WORKERS)))
    await check(h, tally)


async def check(h: Harness, tally: Tally) -> None:
    """The ledger after a soak, as the control API of ``h`` shows it: consistent, nothing applied twice, and
    what the clients were told."""
    report = await h.invariants()
    assert report["ok"], report["problems"][:5]
    assert report["transactions"] > 1000
    log = await h.transactions()
    seen: dict[tuple[str, str], Any] = {}
    for t in log:  # every transaction once; a repeated one is shown with both of its rows
        first = seen.setdefault((t["dialect"], t["transaction"]), t)
        assert first is t, f"a transaction was applied twice: {first} and {t}"

    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for t in log:
        kind = "xpro" if t["dialect"] == "xpro" else t["kind"]
        if kind == "xpro":
            by_kind[kind] += t["amount"]
        else:
            by_kind[kind] += t["debit"] if t["kind"] in ("withdraw", "bet") else t["credit"]
        count[kind] += 1
    for kind in ("xpro", "withdraw", "deposit", "bet", "payout"):
        assert count[kind] == len(tally.succeeded[kind]), kind  # every success applied once, nothing else
        assert by_kind[kind] == tally.moved[kind], kind
    assert count["rollback"] == len(tally.succeeded["rollback"]) and count["cancel"] == len(tally.succeeded["cancel"])
    for player in await h.players():
        assert player["balance"] >= 0
