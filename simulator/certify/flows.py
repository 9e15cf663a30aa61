"""Case bodies shared by both seamless wallets, written against the verbs of ``wire.Wallet``:
debit (withdraw / bet), credit (deposit / payout), undo (rollback / cancel).

Each is a small function with its own failure messages; ``fizzy.py`` and ``ambslot.py`` give them ids and
the words of the case table. Verdict rules: a wrong balance, a double debit or a success the wallet did not
apply *fails*; a refusal with another code than a *documented* one fails; a refusal with another code than
one of *our decisions* (replays, duplicates, tombstones) *warns*.
"""

from __future__ import annotations

import asyncio
import math
from decimal import ROUND_CEILING, Decimal
from typing import Any

from simulator.certify.core import Answer, Fail, Skip
from simulator.certify.runner import Ctx
from simulator.certify.wire import Request

RETRIES = 5  # a provider retries "pending" answers a few times, backing off
FUTURE_FIELDS: dict[str, Any] = {"certifyFutureField": "ignore me", "certifyFutureObject": {"nested": [1, "two", None]}}


async def debit_ok(ctx: Ctx) -> None:
    await ctx.balance("before")
    await ctx.debit()
    await ctx.balance(f"after the {ctx.wallet.debit_word}")


async def credit_ok(ctx: Ctx) -> None:
    debit = await ctx.debit()
    win = ctx.amount * 2
    await ctx.applied(ctx.wallet.credit(debit, win, ctx.new_id("c")), f"{ctx.wallet.CREDIT} of {win}", credit=win)
    await ctx.balance("after the win")


async def undo_ok(ctx: Ctx) -> None:
    w = ctx.wallet
    debit = await ctx.debit()
    await ctx.applied(w.undo(debit, ctx.new_id("u")), w.undo_word, credit=debit.amount)
    await ctx.balance(f"after the {w.undo_word}")


async def insufficient_funds(ctx: Ctx) -> None:
    w = ctx.wallet
    before = await ctx.balance("before")
    request = ctx.debit_request(before + ctx.amount)
    answer = await ctx.send(request, f"{w.debit_word} of {request.amount} (balance {before})")
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u")))
    ctx.expect_refused(answer, f"a {w.debit_word} larger than the balance", w.INSUFFICIENT, documented=True)
    await ctx.balance("after the refusal")


async def _repeat(ctx: Ctx, request: Request, label: str, *, debit: Decimal, credit: Decimal) -> None:
    """Send ``request`` twice: one effect, and the repeat answers like the original (our decision)."""
    first = await ctx.applied(request, label, debit=debit, credit=credit)
    again = await ctx.send(request, f"the same {label} again (same id, same body)")
    if again.ok:
        ctx.reconcile(again.balance, f"the answer to the repeated {label}", "the repeat was applied a second time")
        if again.body != first.body:
            ctx.warn("the repeat succeeded but did not replay the original answer", actual=again.describe())
    else:
        ctx.warn(
            f"the repeated {label} was refused ({again.describe()}); our decision is to replay the original answer",
            expected="success with the original answer",
            actual=again.describe(),
        )
    await ctx.balance(f"after the repeated {label}")


async def debit_repeat(ctx: Ctx) -> None:
    request = ctx.debit_request()
    await _repeat(ctx, request, ctx.wallet.debit_word, debit=request.amount, credit=Decimal(0))


async def credit_repeat(ctx: Ctx) -> None:
    debit = await ctx.debit()
    win = ctx.amount * 2
    request = ctx.wallet.credit(debit, win, ctx.new_id("c"))
    await _repeat(ctx, request, ctx.wallet.CREDIT.strip("/").split("/")[-1], debit=Decimal(0), credit=win)


async def undo_repeat(ctx: Ctx) -> None:
    debit = await ctx.debit()
    request = ctx.wallet.undo(debit, ctx.new_id("u"))
    await _repeat(ctx, request, ctx.wallet.undo_word, debit=Decimal(0), credit=debit.amount)


async def same_id_other_amount(ctx: Ctx) -> None:
    w = ctx.wallet
    first = await ctx.debit()
    other = w.debit(first.amount * 2, first.txn, first.round_id)
    answer = await ctx.send(other, f"a {w.debit_word} reusing the id with twice the amount")
    if answer.ok:
        ctx.cleanup.append(w.undo(other, ctx.new_id("u")))
        ctx.reconcile(answer.balance, "the answer to the reused id", "the second amount was applied")
        raise Fail(
            f"a {w.debit_word} reusing an id with another amount was answered as a success without being applied: "
            "the provider now believes the new amount was taken",
            expected=f"refused with {w.DUPLICATE!r}",
            actual=answer.describe(),
        )
    ctx.expect_refused(answer, f"a {w.debit_word} reusing an id with another amount", w.DUPLICATE, documented=False)
    await ctx.balance("after the reused id")


async def undo_unknown(ctx: Ctx) -> None:
    w = ctx.wallet
    ghost = ctx.debit_request()  # never sent
    answer = await ctx.send(w.undo(ghost, ctx.new_id("u")), f"{w.undo_word} of a {w.debit_word} never sent")
    if answer.ok:
        ctx.reconcile(answer.balance, f"the answer to the {w.undo_word}", f"the {w.undo_word} credited something")
        if w.UNDO_UNKNOWN is not None:
            ctx.warn(
                f"the {w.undo_word} of an unknown {w.debit_word} answered success; our decision is {w.UNDO_UNKNOWN}",
                expected=repr(w.UNDO_UNKNOWN),
                actual=answer.describe(),
            )
    elif w.UNDO_UNKNOWN is None:
        ctx.warn(
            f"the {w.undo_word} of an unknown round was refused; our decision is success with the balance unchanged "
            "(it stops the provider's retries)",
            expected="success, balance unchanged",
            actual=answer.describe(),
        )
    else:
        ctx.expect_refused(answer, f"the {w.undo_word} of an unknown {w.debit_word}", w.UNDO_UNKNOWN, documented=False)
    await ctx.balance(f"after the {w.undo_word}")


async def late_debit(ctx: Ctx) -> None:
    w = ctx.wallet
    late = ctx.debit_request()
    undo = await ctx.send(w.undo(late, ctx.new_id("u")), f"{w.undo_word} before its {w.debit_word} arrived")
    if undo.ok:
        ctx.reconcile(undo.balance, f"the answer to the early {w.undo_word}", "it credited something")
    answer = await ctx.send(late, f"the {w.debit_word} arriving after its {w.undo_word}")
    after = await ctx.quiet_balance()
    if after is not None and after != ctx.model.balance:
        raise Fail(
            f"the {w.debit_word} that arrived after its {w.undo_word} moved the balance: the provider considers "
            "that stake returned, the player lost it",
            expected=f"balance {ctx.model.balance}",
            actual=f"balance {after} ({answer.describe()})",
        )
    if answer.ok:
        ctx.warn(
            f"the late {w.debit_word} answered success without moving money; our decision is to refuse it",
            expected=repr(w.LATE),
            actual=answer.describe(),
        )
    else:
        ctx.expect_refused(answer, f"the late {w.debit_word}", w.LATE, documented=False)
    await ctx.balance(f"after the late {w.debit_word}")


async def _warm(ctx: Ctx, n: int) -> None:
    """Open n keep-alive connections first (n balance calls at once), so the n calls that follow leave
    together instead of trickling out as connections are set up."""
    await asyncio.gather(*(ctx.quiet_balance() for _ in range(n)))


async def same_debit_parallel(ctx: Ctx) -> None:
    w, n = ctx.wallet, ctx.target.concurrency
    await _warm(ctx, n)
    before = await ctx.balance("before")
    request = ctx.debit_request()
    answers = await asyncio.gather(
        *(ctx.try_send(request, f"{w.debit_word} {i + 1}/{n} (identical)") for i in range(n))
    )
    accepted = [a for a in answers if a is not None and a.ok]
    after = await ctx.quiet_balance()
    moved = None if after is None else before - after
    what = f"{n} identical {w.debit_word}s at once"
    if moved is not None and moved not in (0, request.amount):
        raise Fail(
            f"{what} moved {moved}: one debit is {request.amount}",
            expected=str(before - request.amount),
            actual=str(after),
        )
    if moved == 0 and accepted:
        raise Fail(f"{what}: {len(accepted)} answered success but nothing was debited", actual=str(after))
    if moved:
        ctx.model.debit(request.amount)
        for answer in accepted:
            ctx.reconcile(answer.balance, f"a success answer to the {what}", "answers disagree with one debit")
        if not accepted:
            ctx.warn(f"{what}: one debit was applied but no answer said so", actual=str(after))
    else:
        ctx.warn(
            f"{what}: none was accepted, so there was nothing to check",
            actual=answers[0].describe() if answers[0] else "no answer",
        )
    await ctx.balance(f"after the {what}")


def _chunk(balance: Decimal, least: Decimal) -> Decimal:
    """Whole units worth 60% of the balance: any two parallel successes overdraw, so a wallet that checks the
    balance apart from debiting it is caught as soon as two debits overlap (whole units keep floats exact)."""
    return max(least, (balance * Decimal("0.6")).to_integral_value(rounding=ROUND_CEILING))


async def overdraw_parallel(ctx: Ctx) -> None:
    w, n = ctx.wallet, ctx.target.concurrency
    await _warm(ctx, n)
    before = await ctx.balance("before")
    chunk = _chunk(before, ctx.amount)
    requests = [ctx.debit_request(chunk) for _ in range(n)]
    answers = await asyncio.gather(
        *(ctx.try_send(r, f"{w.debit_word} {i + 1}/{n} of {chunk}") for i, r in enumerate(requests))
    )
    for request, answer in zip(requests, answers, strict=True):
        if answer is None:  # ambiguous: make it definite with an undo (refunds it if it was applied)
            await ctx.try_send(w.undo(request, ctx.new_id("u")), f"{w.undo_word} of an unanswered {w.debit_word}")
    won = [r for r, a in zip(requests, answers, strict=True) if a is not None and a.ok]
    after = await ctx.quiet_balance()
    negative = [a.balance for a in answers if a is not None and a.ok and a.balance is not None and a.balance < 0]
    ctx.cleanup += [w.undo(r, ctx.new_id("u")) for r in won]
    if (after is not None and after < 0) or negative:
        raise Fail(
            f"{n} parallel {w.debit_word}s of {chunk} (total {chunk * n}, balance {before}) took the balance "
            "below zero",
            expected=">= 0",
            actual=f"balance {after}, answered {negative}",
        )
    expected = before - chunk * len(won)
    if after != expected:
        raise Fail(
            f"{len(won)} of {n} parallel {w.debit_word}s of {chunk} succeeded, so the balance should be {expected}",
            expected=str(expected),
            actual=str(after),
        )
    ctx.cleanup.clear()
    ctx.model.debit(chunk * len(won))
    for request in won:
        await ctx.applied(w.undo(request, ctx.new_id("u")), f"{w.undo_word} (tidying up)", credit=request.amount)
    if not won:
        ctx.warn(f"none of {n} parallel {w.debit_word}s of {chunk} succeeded, so nothing was checked")
    await ctx.balance("after tidying up")


async def _abandoned_debit(ctx: Ctx) -> tuple[Decimal, Request]:
    """The balance before, and a debit sent on a connection closed unread (then given time to finish)."""
    before = await ctx.balance("before")
    request = ctx.debit_request()
    await ctx.abandon(request, f"{ctx.wallet.debit_word} (abandoned: our timeout fired)")
    await ctx.settle_after_abandon(before)
    return before, request


async def retry_after_abandon(ctx: Ctx) -> None:
    w = ctx.wallet
    before, request = await _abandoned_debit(ctx)
    answer = None
    for attempt in range(1, RETRIES + 1):
        answer = await ctx.send(request, f"retry {attempt} of the same {w.debit_word}")
        if answer.ok or answer.code != w.PENDING:
            break
        await asyncio.sleep(0.05 * attempt)
    assert answer is not None
    if answer.ok:
        ctx.model.debit(request.amount)
        ctx.reconcile(answer.balance, "the answer to the retry", "the abandoned call and its retry debited twice")
    else:
        await _refused_retry(ctx, request, answer, before)
    await ctx.balance("after the retry")


async def _refused_retry(ctx: Ctx, request: Request, answer: Answer, before: Decimal) -> None:
    """A refused retry is allowed when it says "duplicate" of a debit applied once, or when nothing was
    applied (both differ from our decision to replay: a warning); a refusal of an applied debit for any
    other reason leaves the provider believing the stake was never taken: a failure."""
    w = ctx.wallet
    after = await ctx.quiet_balance()
    applied_once = after == before - request.amount
    if after != before and not (applied_once and answer.code == w.DUPLICATE):
        raise Fail(
            f"the retry was refused ({answer.describe()}) yet the balance moved: the provider will treat the "
            f"{w.debit_word} as failed while the player paid",
            expected=f"balance {before}, or {before - request.amount} with {w.DUPLICATE!r}",
            actual=f"balance {after}",
        )
    if applied_once:
        ctx.model.debit(request.amount)
    ctx.warn(
        f"the retry of an abandoned {w.debit_word} was refused; our decision is to apply it once and replay",
        expected="success",
        actual=answer.describe(),
    )


async def undo_after_abandon(ctx: Ctx) -> None:
    w = ctx.wallet
    before, request = await _abandoned_debit(ctx)
    answer = await ctx.send(w.undo(request, ctx.new_id("u")), f"{w.undo_word} of the abandoned {w.debit_word}")
    after = await ctx.quiet_balance()
    if after != before:
        raise Fail(
            f"after the {w.undo_word} of an abandoned {w.debit_word} the balance is not restored",
            expected=f"balance {before}",
            actual=f"balance {after} ({w.undo_word}: {answer.describe()})",
        )
    await ctx.balance(f"after the {w.undo_word}")


async def cents(ctx: Ctx) -> None:
    w = ctx.wallet
    cent, steps = Decimal("0.01"), 99
    before = await ctx.balance("before")
    last: Request | None = None
    for i in range(1, steps + 1):
        last = await ctx.debit(cent, label=f"{w.debit_word} {i}/{steps} of 0.01")
    assert last is not None
    total = cent * steps
    await ctx.applied(w.credit(last, total, ctx.new_id("c")), f"win of {total}", credit=total)
    if await ctx.balance("after a hundred 0.01 steps") != before:
        raise Fail("the balance drifted", expected=str(before))


async def unknown_fields(ctx: Ctx) -> None:
    w = ctx.wallet
    answer = await ctx.send(w.balance(**FUTURE_FIELDS), "balance with unknown extra fields")
    if not answer.ok:
        ctx.warn("a balance call with unknown extra fields was refused", expected="success", actual=answer.describe())
    else:
        ctx.reconcile(answer.balance, "the balance with unknown fields")
    request = ctx.debit_request(**FUTURE_FIELDS)
    answer = await ctx.send(request, f"{w.debit_word} with unknown extra fields")
    if answer.ok:
        ctx.model.debit(request.amount)
        ctx.reconcile(answer.balance, f"the answer to the {w.debit_word} with unknown fields")
    else:
        ctx.warn(
            f"a {w.debit_word} with unknown extra fields was refused: the provider's next release may add fields",
            expected="success",
            actual=answer.describe(),
        )
    await ctx.balance("after the calls with unknown fields")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def latency(ctx: Ctx) -> None:
    """Judges every call of the run so far (so it runs last); makes no call of its own."""
    timings = ctx.run.timings
    if not timings:
        raise Skip("no call was timed")
    budget_ms = ctx.target.latency_budget * 1000
    limit = getattr(ctx.wallet, "LIMIT_MS", None)
    figures, slow, over = {}, [], []
    for path, values in sorted(timings.items()):
        p50, p99, top = percentile(values, 50), percentile(values, 99), max(values)
        figures[path] = {
            "calls": len(values),
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(top, 1),
        }
        if p99 > budget_ms:
            slow.append(f"{path} p99 {p99:.0f} ms")
        if limit is not None and top >= limit:
            over.append(f"{path} max {top:.0f} ms")
    every = [v for values in timings.values() for v in values]
    ctx.details["latency"] = figures
    summary = f"p50 {percentile(every, 50):.1f} ms, p99 {percentile(every, 99):.1f} ms over {len(every)} calls"
    if over:
        raise Fail(f"answers slower than the document's {limit} ms: {', '.join(over)} ({summary})")
    if slow:
        ctx.warn(
            f"p99 above the budget of {budget_ms:.0f} ms: {', '.join(slow)} ({summary})",
            expected=f"p99 <= {budget_ms:.0f} ms",
            actual=", ".join(slow),
        )
    ctx.note = summary
