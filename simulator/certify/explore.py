"""Explore mode: random histories against the operator's wallet, each judged against what an exact,
idempotent wallet could have answered, and any failure shrunk to the shortest history that still fails.

``certify DIALECT --explore N --seed S`` lets Hypothesis's stateful testing (a ``RuleBasedStateMachine``)
draw N histories of up to ``--explore-steps`` steps. A step is a debit (withdraw / bet), a credit (deposit /
payout) of a debit that stands, an undo (rollback / cancel), a repeat of any call under its own id, an undo
sent before its debit (then the late debit), a call whose connection is dropped before the answer (then,
maybe, its retry), or two or three calls on the player at once (debits, or a debit and its undo). Amounts
are the ones binary floats and truncation get wrong: 0.29, 0.57, 1.13, 4.35, 0.07.

The judge keeps every *world* an exact, idempotent wallet could be in: a call whose answer was lost (no
answer, HTTP 5xx, a "pending" code) may or may not have applied, so both worlds stay until an answer or a
balance tells them apart. Each answer must fit at least one world (a success's balance included; calls sent
at once must fit some order of them), and so must the balance read after every step. The first answer no
world explains ends the history: Hypothesis then shrinks it, replaying shorter histories with fresh ids,
and the shortest failing one is printed as a numbered script, written to a JSON file (``--history-out``),
and carried by the reports. ``--replay FILE`` runs exactly that history again (with fresh ids), no
Hypothesis needed.

An operator's wallet cannot be reset, so every history uses ids of its own and is judged relative to the
balance read when it starts; after it, the debits it left standing are undone (unjudged).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from simulator import jsonio
from simulator.certify.core import FAIL, PASS, SKIP, Answer, Exchange, Result
from simulator.certify.runner import NoAnswer, Run
from simulator.certify.wire import Request
from simulator.config import CERTIFY_DEFAULTS
from simulator.dialects import registry

AMOUNTS = tuple(Decimal(a) for a in ("0.29", "0.57", "1.13", "4.35", "0.07"))
FORMAT = "certify-explore-history/1"
INSTALL = "pip install 'wallet-simulator[explore]'"
DEFAULT_STEPS = CERTIFY_DEFAULTS["explore_steps"]
SETTLE = 30  # histories without a smaller failure before a one-step failure of several calls is kept
SHAPES = ("distinct", "same", "undo")  # calls at once: distinct debits, one debit repeated, a debit and its undo
QUIET = 0.2  # seconds given to an abandoned call that cannot move the balance, before the next step
MAX_EXCHANGES = 200  # kept with a failure in the reports
T = TypeVar("T")


class Divergence(AssertionError):
    """An answer or a balance that no world of an exact, idempotent wallet explains."""


class Exhausted(Exception):
    """The time budget is spent (or the failure cannot shrink further): end every remaining example."""


# the history: data that a file can hold and --replay can run again


@dataclass(frozen=True)
class Call:
    """One call of a history. ``ref`` names it (``d1``, ``c1``, ``u1``): sending a name again is a repeat
    (same id, same body). ``debit`` is the debit it refers to; ``amount`` the debit's amount (a credit: the
    win), so a file is readable on its own."""

    do: str  # debit | credit | undo
    ref: str
    debit: str
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"do": self.do, "ref": self.ref}
        if self.do != "debit":
            data["debit"] = self.debit
        data["amount"] = str(self.amount)
        return data


@dataclass(frozen=True)
class Step:
    calls: tuple[Call, ...]  # one call, or several sent at once
    abandon: bool = False  # one call whose connection is closed before its answer is read

    def to_dict(self) -> dict[str, Any]:
        if len(self.calls) > 1:
            return {"together": [c.to_dict() for c in self.calls]}
        data = self.calls[0].to_dict()
        if self.abandon:
            data["abandon"] = True
        return data


def history_document(dialect: str, steps: Iterable[Step], **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "dialect": dialect, **extra, "steps": [s.to_dict() for s in steps]}


def _call(raw: Any, where: str, problems: list[str]) -> Call | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a call is a mapping with do, ref, amount")
        return None
    do, ref = raw.get("do"), raw.get("ref")
    if do not in ("debit", "credit", "undo"):
        problems.append(f"{where}: do: {do!r} is not debit, credit or undo")
        return None
    if not isinstance(ref, str) or not ref:
        problems.append(f"{where}: ref: a name such as d1 is required")
        return None
    debit = ref if do == "debit" else raw.get("debit")
    if not isinstance(debit, str) or not debit:
        problems.append(f"{where}: debit: the name of the debit this {do} refers to is required")
        return None
    try:
        amount = Decimal(str(raw.get("amount")))
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount <= 0:
        problems.append(f"{where}: amount: {raw.get('amount')!r} is not a positive amount")
        return None
    unknown = set(raw) - {"do", "ref", "debit", "amount", "abandon"}
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return Call(do, ref, debit, amount)


def read_history(path: str, dialect: str) -> list[Step]:
    """The steps of a history file; ValueError lists every problem, each with the file and step."""
    try:
        data = jsonio.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError([f"--replay: cannot read {path}: {exc.strerror or exc}"]) from None
    except jsonio.JSONError as exc:
        raise ValueError([f"--replay: {path} is not JSON: {exc}"]) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("steps"), list):
        raise ValueError([f"--replay: {path} is not a history written by certify --explore ({FORMAT})"])
    if data.get("dialect") != dialect:
        raise ValueError([f"--replay: {path} is a {data.get('dialect')} history, not {dialect}"])
    problems: list[str] = []
    steps: list[Step] = []
    for n, raw in enumerate(data["steps"], 1):
        where = f"{path}: step {n}"
        together = raw.get("together") if isinstance(raw, dict) else None
        if together is not None:
            if not isinstance(together, list) or not 2 <= len(together) <= 10:
                problems.append(f"{where}: together: a list of 2 to 10 calls")
                continue
            calls = [_call(c, f"{where}.{i}", problems) for i, c in enumerate(together, 1)]
            if all(c is not None for c in calls):
                steps.append(Step(tuple(c for c in calls if c is not None)))
            continue
        call = _call(raw, where, problems)
        if call is not None:
            steps.append(Step((call,), abandon=bool(raw.get("abandon"))))
    if problems:
        raise ValueError(problems)
    return steps


def script(steps: Iterable[Step], words: dict[str, str], notes: list[str] | None = None) -> str:
    """The history as numbered lines an engineer can follow (and type into their own tools)."""
    sent: set[str] = set()
    undone: dict[str, str] = {}
    lines = []
    for n, step in enumerate(steps, 1):
        parts = []
        for call in step.calls:
            word = words[call.do]
            if call.ref in sent:
                text = f"{word} {call.ref} again (same id, same body)"
            elif call.do == "debit":
                text = f"{word} {call.ref} of {call.amount}"
                if call.ref in undone:
                    text += f", after its {words['undo']} {undone[call.ref]}"
            elif call.do == "credit":
                text = f"{word} {call.ref} of {call.amount} for {words['debit']} {call.debit}"
            else:
                text = f"{word} {call.ref} of {words['debit']} {call.debit}"
                if call.debit not in sent:
                    text += f" (not sent yet: {call.amount})"
                    undone.setdefault(call.debit, call.ref)
            sent.add(call.ref)
            parts.append(text)
        line = f"{n}. " + ("at once: " + " | ".join(parts) if len(parts) > 1 else parts[0])
        if step.abandon:
            line += " -- connection closed before the answer"
        if notes is not None and n <= len(notes) and notes[n - 1]:
            line += f"\n     {notes[n - 1]}"
        lines.append(line)
    return "\n".join(lines) if lines else "(no step: the first balance call already disagrees)"


# the judge: every world an exact, idempotent wallet could be in


@dataclass(frozen=True)
class World:
    delta: Decimal = Decimal(0)  # balance change since the history began
    standing: frozenset[str] = frozenset()  # debits applied and not undone
    undone: frozenset[str] = frozenset()  # debits applied, then refunded
    void: frozenset[str] = frozenset()  # debits whose undo came first: they must never apply
    done: frozenset[str] = frozenset()  # credits and undos the wallet has processed


@dataclass(frozen=True)
class Move:
    ok: bool  # the wallet answers success (else a refusal)
    world: World
    checked: bool = False  # a success answers the world's balance (a repeat may replay an older one)


def moves(w: World, call: Call) -> list[Move]:
    """What an exact, idempotent wallet may do with ``call`` in world ``w``. Where the documents leave a
    choice (replay or refuse a repeat; refuse or accept an undo of an unknown debit), both are allowed;
    money never is: a repeat moves nothing, a late debit moves nothing, an undo refunds once."""
    d = call.debit
    if call.do == "debit":
        if d in w.void or d in w.standing or d in w.undone:
            return [Move(True, w), Move(False, w)]
        return [Move(True, replace(w, delta=w.delta - call.amount, standing=w.standing | {d}), True), Move(False, w)]
    if call.ref in w.done:
        return [Move(True, w), Move(False, w)]
    done = w.done | {call.ref}
    if call.do == "credit":
        if d in w.standing:  # a win for a standing debit must be paid
            return [Move(True, replace(w, delta=w.delta + call.amount, done=done), True)]
        return [Move(False, w), Move(True, w)]
    if d in w.standing:  # an undo of a standing debit must refund it, once
        refunded = replace(w, delta=w.delta + call.amount, standing=w.standing - {d}, undone=w.undone | {d})
        return [Move(True, replace(refunded, done=done), True)]
    if d in w.undone or d in w.void:  # a second undo under a new id refunds nothing
        return [Move(True, replace(w, done=done), True), Move(False, w)]
    voided = replace(w, void=w.void | {d})  # undo first: the debit, if it ever comes, must not apply
    return [Move(True, replace(voided, done=done), True), Move(False, voided)]


@dataclass
class Outcome:
    """A call's answer as the judge sees it: success with a balance, a refusal, or unknown."""

    kind: str  # ok | refused | unknown
    balance: Decimal | None = None
    text: str = ""


def fits(move: Move, outcome: Outcome, start: Decimal) -> bool:
    if outcome.kind == "unknown":
        return True
    if outcome.kind == "refused":
        return not move.ok
    return move.ok and (not move.checked or start + move.world.delta == outcome.balance)


def after_one(worlds: set[World], call: Call, outcome: Outcome, start: Decimal) -> set[World]:
    return {m.world for w in worlds for m in moves(w, call) if fits(m, outcome, start)}


def after_together(worlds: set[World], calls: list[Call], outcomes: list[Outcome], start: Decimal) -> set[World]:
    """Calls sent at once: the worlds reached by some order of them in which every answer fits. A success
    may answer its own balance or a later one of that order (a wallet reading its balance after committing
    sees the calls that committed meanwhile); it may not answer one that misses its own effect or an
    earlier call's (that is a lost update)."""
    found: set[World] = set()
    for order in itertools.permutations(range(len(calls))):
        paths: list[tuple[World, list[tuple[int, Move]]]] = [(w, []) for w in worlds]
        for i in order:
            paths = [
                (m.world, [*path, (i, m)])
                for w, path in paths
                for m in moves(w, calls[i])
                if outcomes[i].kind == "unknown" or m.ok == (outcomes[i].kind == "ok")
            ]
        for world, path in paths:
            later = [start + m.world.delta for _, m in path]
            if all(
                not (m.ok and m.checked and outcomes[i].kind == "ok") or outcomes[i].balance in later[pos:]
                for pos, (i, m) in enumerate(path)
            ):
                found.add(world)
    return found


def expected_balances(worlds: Iterable[World], start: Decimal) -> str:
    return ", ".join(sorted({str(start + w.delta) for w in worlds}, key=Decimal))


# running a history against the wallet


@dataclass
class Explorer:
    """What every history of a run shares: the runner, the limits, and the failures found."""

    run: Run
    steps: int = DEFAULT_STEPS
    deadline: float = float("inf")
    stopped: bool = False
    histories: int = 0
    calls: int = 0
    accepted: int = 0  # calls answered with success: none means nothing was really explored
    best: History | None = None  # the shortest failing history seen
    best_at: int = 0  # how many histories had run when it was found
    failures: int = 0

    @property
    def words(self) -> dict[str, str]:
        w = self.run.wallet
        return {"debit": w.debit_word, "credit": w.CREDIT.rsplit("/", 1)[-1], "undo": w.undo_word}

    def interrupted(self) -> bool:
        return self.stopped

    @property
    def over(self) -> bool:
        return self.stopped or self.smallest or time.monotonic() > self.deadline

    @property
    def smallest(self) -> bool:
        """The failure found is one call of the smallest amount, not abandoned (or several at once, and
        SETTLE more histories found nothing smaller): shrinking cannot do better, so the remaining
        examples are skipped (each would cost real calls)."""
        best = self.best
        if best is None or len(best.steps) != 1 or best.steps[0].abandon:
            return False
        if any(c.amount != AMOUNTS[0] for c in best.steps[0].calls):
            return False
        return len(best.steps[0].calls) == 1 or self.histories - self.best_at >= SETTLE

    def failed(self, history: History) -> None:
        self.failures += 1
        if self.best is None or history.size() <= self.best.size():  # a later one of a size is more shrunk
            if self.best is None or history.size() < self.best.size():
                self.best_at = self.histories
            self.best = history


@dataclass
class History:
    """One history against the wallet: its steps so far, the worlds still possible, what was seen."""

    explorer: Explorer
    start: Decimal = Decimal(0)
    worlds: set[World] = field(default_factory=lambda: {World()})
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the wallet answered, per step
    requests: dict[str, Request] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    exchanges: list[Exchange] = field(default_factory=list)
    message: str = ""

    @property
    def run(self) -> Run:
        return self.explorer.run

    def size(self) -> tuple[int, int, int]:
        """Calls, steps, abandoned calls: the smaller, the easier to follow."""
        return sum(len(s.calls) for s in self.steps), len(self.steps), sum(s.abandon for s in self.steps)

    def request(self, call: Call) -> Request:
        """The request of a call, built once (a repeat is byte-identical), with fresh ids of this run."""
        known = self.requests.get(call.ref)
        if known is not None:
            return known
        w, run = self.run.wallet, self.run
        debit = self.requests.get(call.debit)
        if debit is None:
            amount = call.amount if call.do != "credit" else Decimal("0.01")
            debit = self.requests[call.debit] = w.debit(amount, run.new_id("xd"), run.new_id("xr"))
        if call.do == "credit":
            self.requests[call.ref] = w.credit(debit, call.amount, run.new_id("xc"))
        elif call.do == "undo":
            self.requests[call.ref] = w.undo(debit, run.new_id("xu"))
        return self.requests[call.ref]

    async def begin(self) -> None:
        self.start = await self._balance("the balance when the history starts")

    async def _balance(self, what: str) -> Decimal:
        try:
            answer = await self.run.send(self.run.wallet.balance(), what)
        except NoAnswer as exc:
            if exc.exchange is not None:
                self.exchanges.append(exc.exchange)
            raise Divergence(f"{what}: no answer ({exc.reason})") from None
        self.exchanges.append(answer.exchange)
        if not answer.ok or answer.balance is None:
            raise Divergence(f"{what} was not a success with a balance: {answer.describe()}")
        return answer.balance

    def _outcome(self, answer: Answer) -> Outcome:
        text = answer.describe()
        ambiguous = registry.get(self.run.wallet.dialect).ambiguous
        code = answer.code if isinstance(answer.code, str | int) else None  # a hostile wallet may send a list
        if answer.http >= 500 or code == self.run.wallet.PENDING or code in ambiguous:
            return Outcome("unknown", text=f"{text} (outcome unknown)")
        if answer.ok:
            return Outcome("ok", answer.balance, text)
        return Outcome("refused", text=text)

    async def _send(self, call: Call, label: str) -> Outcome:
        self.explorer.calls += 1
        try:
            answer = await self.run.send(self.request(call), label)
        except NoAnswer as exc:
            if exc.exchange is not None:
                self.exchanges.append(exc.exchange)
            return Outcome("unknown", text=f"no answer ({exc.reason})")
        self.exchanges.append(answer.exchange)
        outcome = self._outcome(answer)
        self.explorer.accepted += outcome.kind == "ok"
        return outcome

    async def _abandon(self, call: Call, label: str) -> Outcome:
        """Send, close the connection unread, then give the wallet time to finish it (until the balance moves,
        at most ``abandon_wait``): the judge assumes an abandoned call took effect, if at all, when sent."""
        self.explorer.calls += 1
        start = time.monotonic()
        try:
            self.exchanges.append(await self.run.abandon(self.request(call), label))
        except NoAnswer as exc:
            return Outcome("unknown", text=f"could not send it ({exc.reason})")
        known = {self.start + w.delta for w in self.worlds}
        if {self.start + m.world.delta for w in self.worlds for m in moves(w, call)} <= known:
            await asyncio.sleep(min(QUIET, self.run.abandon_wait))  # nothing to watch: only let it land
            return Outcome("unknown", text="abandoned: the answer was never read")
        while time.monotonic() - start < self.run.abandon_wait:
            with contextlib.suppress(NoAnswer):
                answer = await self.run.send(self.run.wallet.balance(), "balance (watching)")
                if answer.ok and answer.balance is not None and answer.balance not in known:
                    break
            await asyncio.sleep(0.02)
        return Outcome("unknown", text="abandoned: the answer was never read")

    async def step(self, step: Step) -> None:
        """Send one step, judge its answers, then read and judge the balance; Divergence if no world fits."""
        self.steps.append(step)
        self.notes.append("")
        try:
            await self._judged(step)
        except Divergence as exc:
            self.message = f"step {len(self.steps)}: {exc}"
            self.notes[-1] += f"{'; ' if self.notes[-1] else ''}<-- {exc}"
            raise Divergence(self.message) from None

    async def _judged(self, step: Step) -> None:
        calls, words = list(step.calls), self.explorer.words
        labels = [f"{words[c.do]} {c.ref}" + (" (sent at once)" if len(calls) > 1 else "") for c in calls]
        if step.abandon:
            outcomes = [await self._abandon(calls[0], f"{labels[0]} (abandoned)")]
        else:
            outcomes = list(await asyncio.gather(*(self._send(c, x) for c, x in zip(calls, labels, strict=True))))
        for call in calls:
            self.sent.add(call.ref)
        self.notes[-1] = "answers: " + " | ".join(o.text for o in outcomes)
        before = self.worlds
        if len(calls) == 1:
            self.worlds = after_one(before, calls[0], outcomes[0], self.start)
        else:
            self.worlds = after_together(before, calls, outcomes, self.start)
        if not self.worlds:
            raise Divergence(self._unexplained(before, calls, outcomes))
        balance = await self._balance("the balance after the step")
        self.notes[-1] += f"; balance {balance}"
        fitting = {w for w in self.worlds if self.start + w.delta == balance}
        if not fitting:
            raise Divergence(
                f"the wallet holds {balance}; an exact, idempotent wallet would hold "
                f"{expected_balances(self.worlds, self.start)} (start {self.start})"
            )
        self.worlds = fitting

    def _unexplained(self, before: set[World], calls: list[Call], outcomes: list[Outcome]) -> str:
        words = self.explorer.words
        if len(calls) > 1:
            answered = " | ".join(o.text for o in outcomes)
            return (
                f"no order of the {len(calls)} calls sent at once explains their answers ({answered}): "
                "a success answered a balance that misses its own effect or an earlier one's (a lost update)"
            )
        call, outcome = calls[0], outcomes[0]
        what = f"{words[call.do]} {call.ref}"
        if outcome.kind == "refused":
            why = "a win for a standing debit must be paid" if call.do == "credit" else "it must refund the debit"
            return f"{what} was refused ({outcome.text}); an exact wallet accepts it: {why}"
        expected = {self.start + m.world.delta for w in before for m in moves(w, call) if m.ok and m.checked}
        shown = ", ".join(str(b) for b in sorted(expected))
        return f"{what} answered balance {outcome.balance}; an exact, idempotent wallet would answer {shown}"

    async def tidy(self) -> None:
        """Undo every debit that may stand and was never credited (unjudged), so the player keeps its money."""
        credited = {c.debit for s in self.steps for c in s.calls if c.do == "credit"}
        maybe = set().union(*(w.standing for w in self.worlds)) if self.worlds else set(self.requests)
        for ref in sorted(maybe - credited):
            debit = self.requests.get(ref)
            if debit is not None:
                with contextlib.suppress(NoAnswer):
                    await self.run.send(self.run.wallet.undo(debit, self.run.new_id("xt")), "tidy-up undo")

    def document(self, **extra: Any) -> dict[str, Any]:
        return history_document(self.run.wallet.dialect, self.steps, **extra)

    def text(self) -> str:
        return script(self.steps, self.explorer.words, self.notes)


# generation and shrinking: Hypothesis's stateful testing


def hypothesis_missing() -> str | None:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return f"--explore needs Hypothesis, which is not installed: {INSTALL}"
    return None


def _machine(explorer: Explorer, bridge: Callable[[Awaitable[Any]], Any]) -> type[Any]:
    """The state machine class: each rule draws one step and runs it against the wallet at once (through
    ``bridge``, onto the run's event loop), so Hypothesis sees a failure where it happens and shrinks it."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

    amounts = st.sampled_from(AMOUNTS)

    class Wallet(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.h = History(explorer)
            self.names = itertools.count(1)
            self.unsent: list[str] = []  # debits whose undo went first
            self.credited: set[str] = set()
            if explorer.over:
                raise Exhausted  # Hypothesis has no "stop now": the last examples end at once, unjudged
            explorer.histories += 1
            self._judged(self.h.begin())

        def _do(self, *calls: Call, abandon: bool = False) -> None:
            if explorer.over:
                raise Exhausted
            self._judged(self.h.step(Step(tuple(calls), abandon)))

        def _judged(self, coro: Awaitable[None]) -> None:
            try:
                bridge(coro)
            except Divergence:
                explorer.failed(self.h)
                raise

        def _name(self, kind: str) -> str:
            return f"{kind}{next(self.names)}"

        def _debits(self) -> list[str]:
            return sorted({c.debit for s in self.h.steps for c in s.calls} - set(self.unsent))

        def _call(self, ref: str) -> Call:
            return next(c for s in self.h.steps for c in s.calls if c.ref == ref)

        @rule(amount=amounts, abandon=st.booleans())
        def debit(self, amount: Decimal, abandon: bool) -> None:
            ref = self._name("d")
            self._do(Call("debit", ref, ref, amount), abandon=abandon)

        @precondition(lambda self: bool(self.h.sent))
        @rule(data=st.data())
        def repeat(self, data: st.DataObject) -> None:
            ref = data.draw(st.sampled_from(sorted(self.h.sent)), label="repeat")
            self._do(self._call(ref))

        def _creditable(self) -> list[str]:
            undone = {c.debit for s in self.h.steps for c in s.calls if c.do == "undo"}
            standing = set.intersection(*(set(w.standing) for w in self.h.worlds)) if self.h.worlds else set()
            return sorted(standing - self.credited - undone)

        @precondition(lambda self: bool(self._creditable()))
        @rule(data=st.data(), amount=amounts, abandon=st.booleans())
        def credit(self, data: st.DataObject, amount: Decimal, abandon: bool) -> None:
            debit = data.draw(st.sampled_from(self._creditable()), label="debit")
            self.credited.add(debit)
            self._do(Call("credit", self._name("c"), debit, amount), abandon=abandon)

        @precondition(lambda self: any(d not in self.credited for d in self._debits()))
        @rule(data=st.data(), abandon=st.booleans())
        def undo(self, data: st.DataObject, abandon: bool) -> None:
            debit = data.draw(st.sampled_from([d for d in self._debits() if d not in self.credited]), label="debit")
            self._do(Call("undo", self._name("u"), debit, self._call(debit).amount), abandon=abandon)

        @rule(amount=amounts)
        def undo_first(self, amount: Decimal) -> None:
            debit = self._name("d")
            self.unsent.append(debit)
            self._do(Call("undo", self._name("u"), debit, amount))

        @precondition(lambda self: bool(self.unsent))
        @rule(data=st.data())
        def late_debit(self, data: st.DataObject) -> None:
            debit = data.draw(st.sampled_from(self.unsent), label="late debit")
            self.unsent.remove(debit)
            amount = next(c.amount for s in self.h.steps for c in s.calls if c.debit == debit)
            self._do(Call("debit", debit, debit, amount))

        @rule(amounts=st.lists(amounts, min_size=2, max_size=3), shape=st.sampled_from(SHAPES))
        def together(self, amounts: list[Decimal], shape: str) -> None:
            if shape == "same":  # one debit sent several times at once
                ref = self._name("d")
                self._do(*[Call("debit", ref, ref, amounts[0])] * len(amounts))
            elif shape == "undo":  # a debit and its undo at once: the undo may overtake it
                ref = self._name("d")
                self._do(Call("debit", ref, ref, amounts[0]), Call("undo", self._name("u"), ref, amounts[0]))
            else:
                refs = [self._name("d") for _ in amounts]
                self._do(*[Call("debit", ref, ref, a) for ref, a in zip(refs, amounts, strict=True)])

        def teardown(self) -> None:
            if self.h.steps:
                with contextlib.suppress(Exception):
                    bridge(self.h.tidy())

    return Wallet


def _drive(explorer: Explorer, examples: int, seed: int, bridge: Callable[[Awaitable[Any]], Any]) -> str:
    """Run Hypothesis (in a worker thread); '' unless explore itself failed (then the traceback)."""
    from hypothesis import HealthCheck, Verbosity, settings
    from hypothesis import seed as fixed_seed
    from hypothesis.stateful import run_state_machine_as_test

    machine = fixed_seed(seed)(_machine(explorer, bridge))
    options = settings(
        max_examples=examples,
        stateful_step_count=explorer.steps,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )
    try:
        run_state_machine_as_test(machine, settings=options)
    except (Divergence, Exhausted):
        return ""  # explorer.best holds the shortest failing history, if any
    except Exception as exc:  # Flaky (a failure that did not repeat, examples ended early) or a bug here
        if explorer.best is not None or explorer.over:
            return ""
        return "".join(traceback.format_exception(exc, limit=6))
    return ""


# the command's entry points


def problems(args: argparse.Namespace) -> list[str]:
    """Mistakes in the explore flags, all at once (the command exits 2 with them)."""
    found = []
    explore, replay = getattr(args, "explore", None), getattr(args, "replay", None)
    if explore is None and not replay:
        return []
    if explore is not None and replay:
        found.append("--explore and --replay: give one of them")
    if (explore is not None or replay) and getattr(args, "load", None) is not None:
        found.append("--load cannot be combined with --explore or --replay")
    if explore is not None:
        if not 1 <= explore <= 100_000:
            found.append(f"--explore: {explore} is not between 1 and 100000")
        missing = hypothesis_missing()
        if missing:
            found.append(missing)
    if not 1 <= args.explore_steps <= 100:
        found.append(f"--explore-steps: {args.explore_steps} is not between 1 and 100")
    if not args.max_seconds > 0:
        found.append("--max-seconds: must be positive")
    if replay:
        try:
            read_history(replay, args.dialect)
        except ValueError as exc:
            found.extend(exc.args[0])
    return found


def history_path(args: argparse.Namespace, dialect: str, run_id: str) -> Path:
    """``--history-out``, else next to the first report asked for, else the current directory."""
    if args.history_out:
        return Path(args.history_out)
    reports = [p for p in (args.json, args.junit, args.html) if p]
    folder = Path(reports[0]).parent if reports else Path(".")
    return folder / f"explore-{dialect}-{run_id}.json"


async def play(run: Run, args: argparse.Namespace, tick: Callable[[], None]) -> list[Result]:
    """``--explore N`` or ``--replay FILE``: one result, ``explore.histories`` or ``explore.replay``."""
    explorer = Explorer(run, steps=args.explore_steps, deadline=time.monotonic() + args.max_seconds)
    if args.replay:
        return [await _replay(explorer, args, read_history(args.replay, run.wallet.dialect))]
    loop = asyncio.get_running_loop()

    def bridge(coro: Awaitable[T]) -> T:
        """Run ``coro`` on the run's loop and wait for it, giving up when the run is interrupted."""
        future = asyncio.run_coroutine_threadsafe(_awaited(coro), loop)
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if explorer.interrupted():  # Ctrl-C: the examples left end at once
                    future.cancel()
                    raise Exhausted from None

    if args.seed is None:  # a random run, printed so that it can be repeated
        args.seed = secrets.randbelow(2**32)
    started = time.perf_counter()
    counting = _ticking(bridge, explorer, tick, explorer.histories)
    try:
        raised = await asyncio.to_thread(_drive, explorer, args.explore, args.seed, counting)
    except asyncio.CancelledError:
        explorer.stopped = True
        raise
    return [await _verdict(explorer, args, raised, time.perf_counter() - started)]


async def _awaited(coro: Awaitable[T]) -> T:
    return await coro


def _ticking(
    bridge: Callable[[Awaitable[T]], T], explorer: Explorer, tick: Callable[[], None], seen: int
) -> Callable[[Awaitable[T]], T]:
    """The bridge, advancing the progress bar once per new history."""
    counted = [seen]

    def call(coro: Awaitable[T]) -> T:
        if explorer.histories > counted[0]:
            counted[0] = explorer.histories
            tick()
        return bridge(coro)

    return call


async def _verdict(explorer: Explorer, args: argparse.Namespace, raised: str, seconds: float) -> Result:
    run = explorer.run
    result = Result("explore.histories", PASS, seconds * 1000)
    result.hint = "replay the history with --replay; each step names the call whose answer no exact wallet gives"
    stats = {"histories": explorer.histories, "calls": explorer.calls, "seconds": round(seconds, 3)}
    stats.update(seed=args.seed, max_steps=explorer.steps)
    result.details["explore"] = stats
    budget = " (stopped by --max-seconds)" if time.monotonic() > explorer.deadline else ""
    best = explorer.best
    if best is None and raised:
        result.status = FAIL
        result.message = f"certify could not complete the exploration: {raised.splitlines()[-1]}"
        result.details["traceback"] = raised
        return result
    if best is None and explorer.calls and not explorer.accepted:
        result.status = SKIP
        result.message = (
            f"the wallet accepted none of {explorer.calls} calls (seed {args.seed}): nothing was explored; "
            "check the player, currency and session with the cases first"
        )
        return result
    if best is None:
        result.message = (
            f"{explorer.histories} random histories ({explorer.calls} calls, up to {explorer.steps} steps each) "
            f"in {seconds:.1f}s, seed {args.seed}{budget}: every answer and balance fits an exact, idempotent wallet"
        )
        return result
    confirm = History(explorer)
    again = await _run_history(confirm, best.steps)
    shown = confirm if again else best
    path = history_path(args, run.wallet.dialect, run.prefix)
    document = shown.document(seed=args.seed, failure=shown.message, run_id=run.prefix)
    written: Path | None = path
    try:
        _write(path, document)
    except OSError as exc:
        written = None
        result.details["history_file_error"] = f"cannot write {path}: {exc.strerror or exc}"
    result.status = FAIL
    calls, steps, _ = best.size()
    result.message = (
        f"{shown.message} -- shortest failing history: {steps} step(s), {calls} call(s), "
        f"found among {explorer.histories} histories (seed {args.seed}){budget}; "
        + ("it failed again when replayed" if again else "it passed when replayed once: the failure depends on timing")
    )
    _carry(result, shown, document, written)
    return result


def _carry(result: Result, history: History, document: dict[str, Any], path: Path | None) -> None:
    """What the reports carry: the history as data and as a numbered script, the exchanges, the file."""
    replay = f"replay: python -m simulator certify {history.run.wallet.dialect} ... --replay {path}" if path else ""
    result.details["history"] = document
    result.details["script"] = history.text() + (f"\n{replay}" if replay else "")
    if path is not None:
        result.details["history_file"] = str(path)
    result.exchanges = history.exchanges[-MAX_EXCHANGES:]


async def _run_history(history: History, steps: list[Step]) -> bool:
    """Run ``steps`` as one history; True when it fails (``history.message`` says how)."""
    try:
        await history.begin()
        for step in steps:
            await history.step(step)
    except Divergence as exc:
        history.message = history.message or str(exc)
        return True
    finally:
        with contextlib.suppress(Exception):
            await history.tidy()
    return False


async def _replay(explorer: Explorer, args: argparse.Namespace, steps: list[Step]) -> Result:
    started = time.perf_counter()
    history = History(explorer)
    failed = await _run_history(history, steps)
    result = Result("explore.replay", FAIL if failed else PASS, (time.perf_counter() - started) * 1000)
    result.hint = "each step names the call whose answer no exact, idempotent wallet gives"
    result.message = (
        f"{history.message} (replaying {args.replay}, {len(steps)} step(s))"
        if failed
        else f"the {len(steps)} step(s) of {args.replay} ran and every answer and balance fits an exact wallet"
    )
    _carry(result, history, history.document(replayed=os.fspath(args.replay)), None)
    return result


def _write(path: Path, document: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonio.pretty(document) + "\n", encoding="utf-8")
