"""Case bodies shared by both seamless wallets, written against the verbs of ``wire.Wallet``:
debit (withdraw / bet), credit (deposit / payout), undo (rollback / cancel).

Each is a small function with its own failure messages; ``fizzy.py`` and ``ambslot.py`` give them ids and
the words of the case table. Verdict rules (docs/certify.md has the table per case):

- *fail*: the provider's document is violated (a code it names for the situation, a field it requires),
  or money is wrong (a double debit, a success that moved no money, a refusal that moved some, a refund of
  more than was taken), or an answer makes the provider retry for ever (a retry code to a permanent error);
- *warn*: a concrete risk the document does not rule out (unknown fields refused, a repeat answered with a
  retry code);
- *note*: the document is silent and the wallet chose differently from the simulator (a repeat refused as a
  duplicate, another refusal code for a late arrival, an unknown cancel answered 997);
- *inconclusive*: a step the case needs but does not judge was refused; the message names the case that
  judges that step, so one defect is reported once.
"""

from __future__ import annotations

import asyncio
import math
from decimal import ROUND_CEILING, Decimal
from typing import Any

from simulator.certify.core import Answer, Fail, Inconclusive, Skip, shown
from simulator.certify.runner import Ctx
from simulator.certify.wire import Request

RETRIES = 5  # a provider retries "pending" answers a few times, backing off
FUTURE_FIELDS: dict[str, Any] = {"certifyFutureField": "ignore me", "certifyFutureObject": {"nested": [1, "two", None]}}
#: amounts that binary floats cannot hold: int(float(x) * 100) gives 28 cents for 0.29, 56 for 0.57, ...
ODD_AMOUNTS = tuple(Decimal(a) for a in ("0.29", "0.57", "1.13", "4.35", "0.07"))


def _retry_code(answer: Answer) -> str:
    """Words for an answer that makes the provider retry (HTTP 5xx, a timeout code)."""
    return f"{answer.describe()} tells the provider to retry, so it retries for ever"


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
    await ctx.undo(debit, w.undo_word)
    await ctx.balance(f"after the {w.undo_word}")


async def insufficient_funds(ctx: Ctx) -> None:
    w = ctx.wallet
    before = await ctx.balance("before")
    request = ctx.debit_request(before + ctx.amount)
    answer = await ctx.send(request, f"{w.debit_word} of {request.amount} (balance {before})")
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u")))
    # seed 002 lists ERROR_TRANSACTION_INSUFFICIENT_FUNDS; seed 003 has no code for it (800 is ours)
    documented = w.INSUFFICIENT_DOCUMENTED
    ctx.expect_refused(answer, f"a {w.debit_word} larger than the balance", w.INSUFFICIENT, documented=documented)
    await ctx.balance("after the refusal")


async def _repeat(ctx: Ctx, request: Request, label: str, first: Answer) -> None:
    """``request`` was applied once (``first``); send it again: one effect, and the repeat answers like the
    original (our decision; a refusal that moves nothing is a note, a retry code a warning)."""
    w = ctx.wallet
    again = await ctx.send(request, f"the same {label} again (same id, same body)")
    if again.ok:
        ctx.reconcile(again.balance, f"the answer to the repeated {label}", "the repeat was applied a second time")
        if again.body != first.body:
            ctx.notice(
                "the repeat succeeded without moving money but did not replay the original answer "
                "(the simulator replays it; the document does not say)",
                actual=again.describe(),
            )
    elif w.retried(again):
        ctx.warn(
            f"the repeated {label} was answered {_retry_code(again)}",
            expected="success with the original answer, or a permanent refusal",
            actual=again.describe(),
        )
    else:
        ctx.notice(
            f"the repeated {label} was refused ({again.describe()}); the simulator replays the original answer "
            "(the document does not say which)",
            expected="success with the original answer",
            actual=again.describe(),
        )
    await ctx.balance(f"after the repeated {label}")


async def debit_repeat(ctx: Ctx) -> None:
    w = ctx.wallet
    request = ctx.debit_request()
    first = await ctx.send(request, w.debit_word)
    ctx.prerequisite(first, f"the first {w.debit_word}", w.DEBIT_CASE)
    ctx.model.debit(request.amount)
    ctx.reconcile(first.balance, f"the answer to the {w.debit_word}")
    await _repeat(ctx, request, w.debit_word, first)


async def credit_repeat(ctx: Ctx) -> None:
    w = ctx.wallet
    debit = await ctx.debit()
    win = ctx.amount * 2
    request = w.credit(debit, win, ctx.new_id("c"))
    word = w.CREDIT.strip("/").split("/")[-1]
    first = await ctx.send(request, word)
    ctx.prerequisite(first, f"the first {word}", w.CREDIT_CASE)
    ctx.model.credit(win)
    ctx.reconcile(first.balance, f"the answer to the {word}")
    await _repeat(ctx, request, word, first)


async def undo_repeat(ctx: Ctx) -> None:
    w = ctx.wallet
    debit = await ctx.debit()
    first = await ctx.undo(debit, w.undo_word)
    request = ctx.last_undo
    assert request is not None
    await _repeat(ctx, request, w.undo_word, first)


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
            expected=f"refused with {shown(w.DUPLICATE)}",
            actual=answer.describe(),
        )
    if w.retried(answer):
        ctx.warn(
            f"a {w.debit_word} reusing an id with another amount was answered {_retry_code(answer)}",
            expected=f"a permanent refusal such as {shown(w.DUPLICATE)}",
            actual=answer.describe(),
        )
    else:
        ctx.expect_refused(answer, f"a {w.debit_word} reusing an id with another amount", w.DUPLICATE, documented=False)
    await ctx.balance("after the reused id")


async def undo_unknown(ctx: Ctx) -> None:
    w = ctx.wallet
    ghost = ctx.debit_request()  # never sent
    answer = await ctx.send(w.undo(ghost, ctx.new_id("u")), f"{w.undo_word} of a {w.debit_word} never sent")
    if answer.ok:
        ctx.reconcile(answer.balance, f"the answer to the {w.undo_word}", f"the {w.undo_word} credited something")
        if w.UNDO_UNKNOWN is not None:
            ctx.notice(
                f"the {w.undo_word} of an unknown {w.debit_word} answered success without moving money; "
                f"the simulator answers {shown(w.UNDO_UNKNOWN)} (the document does not say)",
                expected=shown(w.UNDO_UNKNOWN),
                actual=answer.describe(),
            )
    elif w.retried(answer):
        raise Fail(
            f"the {w.undo_word} of an unknown {w.debit_word} was answered {_retry_code(answer)}",
            expected=f"a permanent answer: {'success' if w.UNDO_UNKNOWN is None else shown(w.UNDO_UNKNOWN)}",
            actual=answer.describe(),
        )
    elif w.UNDO_UNKNOWN is None:
        ctx.notice(
            f"the {w.undo_word} of an unknown round was refused ({answer.describe()}); the simulator answers "
            "success with the balance unchanged, which stops the provider's retries (the document does not say)",
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
        ctx.notice(
            f"the late {w.debit_word} answered success without moving money; the simulator refuses it with "
            f"{shown(w.LATE)} (the document does not say)",
            expected=shown(w.LATE),
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
    what = f"{n} identical {w.debit_word}s of {request.amount} sent at once"
    if moved is not None and moved not in (0, request.amount):
        times = moved / request.amount
        raise Fail(
            f"{what}: {len(accepted)} of {n} succeeded and the balance fell from {before} to {after}, "
            f"{moved} in all ({times.normalize()} times the stake): one id must debit once",
            expected=str(before - request.amount),
            actual=str(after),
        )
    if moved == 0 and accepted:
        raise Fail(
            f"{what}: {len(accepted)} of {n} answered success but nothing was debited (the balance is still {before})",
            actual=str(after),
        )
    if moved:
        ctx.model.debit(request.amount)
        for answer in accepted:
            ctx.reconcile(answer.balance, f"a success answer to the {what}", "answers disagree with one debit")
        if not accepted:
            ctx.warn(
                f"{what}: one debit was applied but no answer said so: the provider believes none was",
                actual=str(after),
            )
    else:
        raise Inconclusive(
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
    could = int(before // chunk)
    expected = before - chunk * len(won)
    story = (
        f"{len(won)} of {n} parallel {w.debit_word}s of {chunk} succeeded on a balance of {before}; "
        f"at most {could} could"
    )
    if len(won) > could or (after is not None and after < 0) or negative:
        if after is not None and after < 0:
            consequence = f"The balance went below zero: the wallet says {after}"
        elif negative:
            consequence = f"Answers gave balances below zero: {', '.join(str(b) for b in negative)}"
        elif after != expected:
            consequence = f"Updates were lost: the wallet says {after}"
        else:
            consequence = f"the wallet says {after}"
        raise Fail(f"{story}. {consequence}", expected=f"at most {could} success(es), balance >= 0", actual=str(after))
    if after != expected:
        raise Fail(
            f"{story}; that leaves {expected}, but the wallet says {after}",
            expected=str(expected),
            actual=str(after),
        )
    ctx.cleanup.clear()
    ctx.model.debit(chunk * len(won))
    if not won:
        raise Inconclusive(f"none of {n} parallel {w.debit_word}s of {chunk} succeeded, so nothing was checked")
    for request in won:
        await ctx.undo(request, f"{w.undo_word} (tidying up)", tidy=True)
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
    applied (both differ from our decision to replay: a note); a refusal of an applied debit for any
    other reason leaves the provider believing the stake was never taken: a failure."""
    w = ctx.wallet
    after = await ctx.quiet_balance()
    applied_once = after == before - request.amount
    if after != before and not (applied_once and answer.code == w.DUPLICATE):
        raise Fail(
            f"the retry was refused ({answer.describe()}) yet the balance moved: the provider will treat the "
            f"{w.debit_word} as failed while the player paid",
            expected=f"balance {before}, or {before - request.amount} with {shown(w.DUPLICATE)}",
            actual=f"balance {after}",
        )
    if applied_once:
        ctx.model.debit(request.amount)
    ctx.notice(
        f"the retry of an abandoned {w.debit_word} was refused ({answer.describe()}) "
        f"{'after applying it once' if applied_once else 'and nothing was applied'}; the simulator applies it "
        "once and replays the answer (the document does not say)",
        expected="success",
        actual=answer.describe(),
    )


async def undo_after_abandon(ctx: Ctx) -> None:
    w = ctx.wallet
    before, request = await _abandoned_debit(ctx)
    _, answer = await ctx.send_undo(request, f"{w.undo_word} of the abandoned {w.debit_word}")
    after = await ctx.quiet_balance()
    if after != before:
        ctx.already_reported(answer, f"the {w.undo_word}", w.UNDO_CASE)
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
        last = await ctx.debit(cent, label=f"{w.debit_word} {i}/{steps} of 0.01", judged=True)
    assert last is not None
    total = cent * steps
    await ctx.applied(w.credit(last, total, ctx.new_id("c")), f"win of {total}", credit=total)
    if await ctx.balance("after a hundred 0.01 steps") != before:
        raise Fail("the balance drifted", expected=str(before))


async def odd_amounts(ctx: Ctx) -> None:
    """Debits and credits of amounts a binary float cannot hold, each answer exact to the cent."""
    w = ctx.wallet
    for amount in ODD_AMOUNTS:
        debit = await ctx.debit(amount, label=f"{w.debit_word} of {amount}", judged=True)
        await ctx.applied(w.credit(debit, amount, ctx.new_id("c")), f"win of {amount}", credit=amount)
    await ctx.balance("after the odd amounts")


async def unknown_player(ctx: Ctx) -> None:
    """A debit for a player the wallet never saw: any permanent refusal passes (accepting it, as the
    simulator does by default, passes too); a retry code makes the provider retry for ever: a failure."""
    w = ctx.wallet
    await ctx.balance("before")
    stranger = f"{ctx.run.prefix}-nobody"
    who: dict[str, Any] = {w.PLAYER_FIELD: stranger}
    request = ctx.debit_request(None, **who)
    answer = await ctx.send(request, f"{w.debit_word} for an unknown player")
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u"), **who))
    elif w.retried(answer):
        raise Fail(
            f"a {w.debit_word} for an unknown player was answered {_retry_code(answer)}",
            expected="a permanent refusal (for example " + str(w.UNKNOWN_PLAYER) + ")",
            actual=answer.describe(),
        )
    await ctx.balance(f"after the {w.debit_word} for an unknown player")


async def second_undo(ctx: Ctx) -> None:
    """A second undo of one debit under a new id must refund nothing (success or refusal both pass)."""
    w = ctx.wallet
    debit = await ctx.debit()
    await ctx.undo(debit, f"first {w.undo_word}")
    answer = await ctx.send(w.undo(debit, ctx.new_id("u")), f"a second {w.undo_word} under a new id")
    if answer.ok:
        ctx.reconcile(
            answer.balance, f"the answer to the second {w.undo_word}", f"the second {w.undo_word} refunded again"
        )
    elif w.retried(answer):
        ctx.warn(
            f"a second {w.undo_word} of one {w.debit_word} was answered {_retry_code(answer)}",
            expected="success with the balance unchanged, or a permanent refusal",
            actual=answer.describe(),
        )
    await ctx.balance(f"after the second {w.undo_word}")


async def two_debits_one_round(ctx: Ctx) -> None:
    """Two debits with their own ids on one round: the second is applied or refused; a success that takes
    nothing means the wallet took it for a repeat of the first (keyed on the round): a failure."""
    w = ctx.wallet
    first = await ctx.debit()
    second = w.debit(ctx.amount, ctx.new_id("d"), first.round_id)
    answer = await ctx.send(second, f"a second {w.debit_word} on the same round (its own transactionId)")
    after = await ctx.quiet_balance()
    if answer.ok:
        if after == ctx.model.balance:
            raise Fail(
                f"the second {w.debit_word} on a round answered success but took nothing: the wallet treated it "
                "as a repeat of the first (idempotency must key on transactionId, not on the round)",
                expected=f"balance {ctx.model.balance - second.amount}, or a refusal",
                actual=f"balance {after} ({answer.describe()})",
            )
        ctx.model.debit(second.amount)
        ctx.reconcile(answer.balance, f"the answer to the second {w.debit_word}")
        if w.REFUSES_SECOND_DEBIT_ON_ROUND:
            ctx.notice(
                "a second bet on a round was accepted; the simulator refuses it with 900 (the document does not say)"
            )
    else:
        if after != ctx.model.balance:
            raise Fail(
                f"the second {w.debit_word} was refused ({answer.describe()}) yet the balance moved",
                expected=f"balance {ctx.model.balance}",
                actual=f"balance {after}",
            )
        if not w.REFUSES_SECOND_DEBIT_ON_ROUND or answer.code != w.DUPLICATE:
            ctx.notice(
                f"a second {w.debit_word} on a round was refused ({answer.describe()}); the simulator "
                + (f"refuses it with {w.DUPLICATE}" if w.REFUSES_SECOND_DEBIT_ON_ROUND else "accepts it")
                + " (the document does not say)"
            )
    await ctx.balance(f"after the second {w.debit_word}")


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
    """Judges every call of the run so far (so it runs last); makes no call of its own. An answer slower than
    the budget fails: AMBSlot's document gives 5 s; ``--latency-budget`` sets one (for Fizzy, whose
    document gives none, there is no budget without it)."""
    timings = ctx.run.timings
    if not timings:
        raise Skip("no call was timed")
    given = ctx.target.latency_budget
    limit_ms: float | None = given * 1000 if given is not None else getattr(ctx.wallet, "LIMIT_MS", None)
    figures, over = {}, []
    for path, values in sorted(timings.items()):
        p50, p99, top = percentile(values, 50), percentile(values, 99), max(values)
        figures[path] = {
            "calls": len(values),
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(top, 1),
        }
        slow = [v for v in values if limit_ms is not None and v >= limit_ms]
        if slow:
            over.append(f"{len(slow)} of {len(values)} calls to {path} (slowest {top:.0f} ms)")
    every = [v for values in timings.values() for v in values]
    ctx.details["latency"] = figures
    summary = f"p50 {percentile(every, 50):.1f} ms, p99 {percentile(every, 99):.1f} ms over {len(every)} calls"
    if over and limit_ms is not None:
        source = "--latency-budget" if given is not None else "the document's limit"
        raise Fail(
            f"answers slower than {source} of {limit_ms / 1000:g} s: {', '.join(over)} ({summary}); the provider "
            "gives up, retries and rolls back",
            expected=f"every answer within {limit_ms / 1000:g} s",
            actual=", ".join(over),
        )
    budget = "no budget (give --latency-budget)" if limit_ms is None else f"budget {limit_ms / 1000:g} s"
    ctx.passed = f"{summary}; {budget}"
