"""Load mode: whole rounds (debit, then a win or an undo) played in parallel against the wallet, with a share
of duplicated, abandoned-and-retried and rolled-back rounds; then throughput, latency percentiles and the
final balance reconciled against the model. Bounded by the number of rounds and by ``max_seconds``.

Each round ends *definite*: when an answer is missing or refused, the round's debit is undone, which refunds
it if it was applied and is harmless if it was not. So the model needs only the confirmed effects.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from simulator.certify import flows
from simulator.certify.core import FAIL, PASS, WARN, Answer, Case, Result, shown
from simulator.certify.runner import NoAnswer, Run
from simulator.certify.wire import Request


@dataclass(frozen=True)
class Plan:
    rounds: int
    duplicates: float
    abandoned: float
    rollbacks: float
    max_seconds: float
    seed: int | None = None


@dataclass
class _Round:
    kind: str  # plain | duplicate | abandoned | rollback
    win: int  # win in stakes: 0, 1 or 2 (a fair game on average)


class Player:
    def __init__(self, run: Run, plan: Plan) -> None:
        self.run = run
        self.wallet = run.wallet
        self.plan = plan
        self.outcomes: Counter[str] = Counter()
        self.effect = Decimal(0)  # confirmed net change of the balance
        self.unresolved = 0
        #: ids whose answers disagree with the effect the model gave them (a repeat that did not replay, a
        #: refused or unanswered credit or undo): where to look first when the final balance differs
        self.suspects: list[str] = []

    def _draw(self, rng: random.Random) -> _Round:
        p, roll = self.plan, rng.random()
        kind = "plain"
        if roll < p.duplicates:
            kind = "duplicate"
        elif roll < p.duplicates + p.abandoned:
            kind = "abandoned"
        elif roll < p.duplicates + p.abandoned + p.rollbacks:
            kind = "rollback"
        return _Round(kind, rng.choice((0, 1, 2)))

    async def _send(self, request: Request, label: str) -> bool | None:
        """True on success, False when refused, None without an answer."""
        answer = await self._answer(request, label)
        return None if answer is None else answer.ok

    async def _answer(self, request: Request, label: str) -> Answer | None:
        try:
            answer = await self.run.send(request, label)
        except NoAnswer:
            if label != "debit":
                self.suspects.append(f"{request.txn} ({label}: no answer)")
            return None
        if not answer.ok:
            self.outcomes[f"{label} refused: {shown(answer.code)}"] += 1
            if label in ("credit", "undo"):
                self.suspects.append(f"{request.txn} ({label} refused: {answer.describe()})")
        return answer

    async def _debit(self, request: Request, kind: str) -> bool | None:
        if kind == "abandoned":
            try:
                await self.run.abandon(request, "abandoned debit")
            except NoAnswer:
                return None
            for attempt in range(1, flows.RETRIES + 1):
                answer = await self.run.send(request, "retried debit")
                if answer.ok or answer.code != self.wallet.PENDING:
                    return answer.ok
                await asyncio.sleep(0.05 * attempt)
            return False
        first = await self._answer(request, "debit")
        ok = None if first is None else first.ok
        if first is not None and first.ok and kind == "duplicate":
            again = await self._answer(request, "duplicate debit")
            if again is not None and again.ok and again.body != first.body:
                self.suspects.append(f"{request.txn} (its repeat succeeded without replaying the first answer)")
        return ok

    async def play(self, spec: _Round) -> None:
        run, w, stake = self.run, self.wallet, self.run.target.amount
        debit = w.debit(stake, run.new_id("d"), run.new_id("r"))
        try:
            ok = await self._debit(debit, spec.kind)
        except NoAnswer:
            ok = None
        if not ok:  # refused or unanswered: make it definite
            undone = await self._send(w.undo(debit, run.new_id("u")), "undo")
            if undone is None:
                self.unresolved += 1
            self.outcomes["debit not applied"] += 1
            return
        self.effect -= stake
        if spec.kind == "rollback":
            if await self._send(w.undo(debit, run.new_id("u")), "undo"):
                self.effect += stake
            self.outcomes["rolled back"] += 1
            return
        win = stake * spec.win
        credited = await self._send(w.credit(debit, win, run.new_id("c")), "credit")
        if credited:
            self.effect += win
        elif credited is None:
            self.unresolved += 1
        self.outcomes[f"{spec.kind} round"] += 1

    async def all(self, concurrency: int, tick: Callable[[], None]) -> float:
        rng = random.Random(self.plan.seed)
        specs = [self._draw(rng) for _ in range(self.plan.rounds)]
        gate = asyncio.Semaphore(concurrency)
        deadline = time.monotonic() + self.plan.max_seconds
        started = time.perf_counter()

        async def one(spec: _Round) -> None:
            async with gate:
                if time.monotonic() > deadline:
                    self.outcomes["not played (time limit)"] += 1
                else:
                    await self.play(spec)
            tick()

        await asyncio.gather(*(one(s) for s in specs))
        return time.perf_counter() - started


async def play(run: Run, plan: Plan, tick: Callable[[], None]) -> list[Result]:
    """Play the rounds, then the three verdicts: load.rounds, reconcile.final and latency.budget."""
    player = Player(run, plan)
    start = run.model.balance
    seconds = await player.all(run.target.concurrency, tick)
    calls = sum(len(v) for v in run.timings.values())
    played = plan.rounds - player.outcomes["not played (time limit)"]
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(player.outcomes.items()))
    refused = sum(v for k, v in player.outcomes.items() if "refused" in k and "debit refused" not in k)
    rounds = Result("load.rounds", WARN if refused else PASS, seconds * 1000)
    rounds.message = (
        f"{played} rounds, {calls} calls in {seconds:.1f}s: {calls / seconds if seconds else 0:.0f} calls/s, "
        f"{played / seconds if seconds else 0:.0f} rounds/s ({outcomes})"
    )
    rounds.details = {"outcomes": dict(player.outcomes), "calls": calls, "seconds": round(seconds, 3)}
    if refused:
        rounds.hint = "credits and undos of applied debits should not be refused"
    run.model.balance = start + player.effect
    final = Result("reconcile.final", PASS, 0.0, hint="compare the wallet's ledger of the run's ids with the report")
    try:
        answer: Answer | None = await run.send(run.wallet.balance(), "final balance")
    except NoAnswer as exc:
        answer = None
        final.status, final.message = FAIL, f"no answer to the final balance call ({exc.reason}): cannot reconcile"
    if answer is None:
        pass
    elif player.unresolved:
        final.status = FAIL
        final.message = f"{player.unresolved} round(s) stayed unanswered even after an undo: cannot reconcile"
    elif not answer.ok or answer.balance != run.model.balance:
        final.status = FAIL
        final.message = (
            f"the wallet says {answer.balance if answer.ok else answer.describe()}, the model expects "
            f"{run.model.balance} (start {start} plus the confirmed effects {player.effect})"
        )
        if player.suspects:
            final.message += (
                f"; the first {min(20, len(player.suspects))} of {len(player.suspects)} ids whose answers disagree "
                f"with the model: {', '.join(player.suspects[:20])}"
            )
        else:
            final.message += "; no answer disagreed on its own: look for ids applied more or less than once"
        final.details["suspects"] = player.suspects[:20]
        final.expected, final.actual = str(run.model.balance), str(answer.balance)
        run.model.findings.append(f"reconcile.final: {final.message}")
    else:
        final.message = f"final balance {answer.balance} = start {start} + confirmed effects {player.effect}"
    latency = Case("latency.budget", "", "", "", "profile the slowest endpoint", flows.latency)
    lat = await run.run_case(latency)
    results = [rounds, final, lat]
    run.results = results
    return results
