"""The AMBSlot cases: the simulator plays AMBSlot against the operator's seamless wallet.

AMBSlot always answers HTTP 200 and puts the outcome in ``status.code``; the document asks for answers
within 5 seconds, which ``latency.budget`` enforces (a slower answer fails, a p99 above the budget warns).
"""

from __future__ import annotations

import secrets

from simulator.certify import flows
from simulator.certify.core import Fail, Suite
from simulator.certify.runner import Ctx
from simulator.certify.wire import AmbslotWallet

suite = Suite("ambslot")
case = suite.case


def _wallet(ctx: Ctx) -> AmbslotWallet:
    assert isinstance(ctx.wallet, AmbslotWallet)
    return ctx.wallet


@case(
    "auth.unknown_agent",
    sends="a bet whose `agent` is not the configured one",
    passes="status 998; balance unchanged",
    why="the agent is the only credential AMBSlot sends",
    hint="look the agent up before anything else and answer 998 for unknown ones",
)
async def unknown_agent(ctx: Ctx) -> None:
    w = _wallet(ctx)
    await ctx.balance("before")
    request = ctx.debit_request(agent="certify-unknown-" + secrets.token_hex(4))
    answer = await ctx.send(request, "bet from an unknown agent")
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u")))
    ctx.expect_refused(answer, "a bet from an unknown agent", w.AUTH, documented=True)
    await ctx.balance("after the refused bet")


@case(
    "balance.ok",
    sends="`/balance` with `username` and `agentId`",
    passes="status 0, `data.username` the player, `data.wallet.balance` a number equal to the model",
    why="AMBSlot shows this balance to the player",
    hint='answer {"status": {"code": 0, ...}, "data": {"username", "wallet": {"balance", "lastUpdate"}}}',
)
async def balance_ok(ctx: Ctx) -> None:
    answer = ctx.expect_ok(await ctx.send(ctx.wallet.balance(), "balance"), "the balance call")
    data = answer.body["data"]
    raw = data.get("wallet", {}).get("balance")
    if isinstance(raw, str):
        ctx.warn("the balance is a string; the document writes numbers", expected="a JSON number", actual=raw)
    elif answer.balance is None:
        raise Fail("data.wallet.balance is not a number", expected="a JSON number", actual=repr(raw))
    if data.get("username") != ctx.target.username:
        raise Fail("data.username is not the player", expected=ctx.target.username, actual=repr(data.get("username")))
    ctx.reconcile(answer.balance, "the balance answer")


@case(
    "bet.ok",
    sends="a bet of the stake on a new round",
    passes="status 0; `wallet.balance` and `balance.after` the balance minus the stake, `balance.before` the "
    "balance before; `refId` the transactionId (otherwise a warning)",
    why="every round starts here",
    hint="debit exactly `amount` and fill balance.before/after from the same atomic step",
)
async def bet_ok(ctx: Ctx) -> None:
    before = await ctx.balance("before")
    request = ctx.debit_request()
    answer = await ctx.applied(request, "bet", debit=request.amount)
    moves = answer.body["data"].get("balance")
    if not isinstance(moves, dict) or moves.get("before") != before or moves.get("after") != answer.balance:
        raise Fail(
            "data.balance.before/after do not describe the bet",
            expected=f"before {before}, after {answer.balance}",
            actual=repr(moves),
        )
    if answer.body["data"].get("refId") != request.txn:
        ctx.warn(
            "data.refId is not the bet's transactionId",
            expected=request.txn,
            actual=repr(answer.body["data"].get("refId")),
        )
    await ctx.balance("after the bet")


case(
    "payout.ok",
    sends="a bet, then a payout of twice the stake on its round",
    passes="status 0 and the balance plus the win",
    why="wins must reach the player",
    hint="credit exactly `amount` of the payout",
)(flows.credit_ok)


@case(
    "settle.ok",
    sends="a settle (bet and win in one call) on a new round",
    passes="status 0; the balance minus `bet` plus `amount`",
    why="single-call rounds are how most AMBSlot games report",
    hint="debit `bet` and credit `amount` in one atomic step",
)
async def settle_ok(ctx: Ctx) -> None:
    w = _wallet(ctx)
    bet, win = ctx.amount, ctx.amount * 3
    request = w.settle(bet, win, ctx.new_id("s"), ctx.new_id("r"))
    await ctx.applied(request, f"settle (bet {bet}, win {win})", debit=bet, credit=win)
    await ctx.balance("after the settle")


case(
    "cancel.ok",
    sends="a bet, then a cancel of its round",
    passes="status 0 and the stake refunded",
    why="AMBSlot cancels every round it could not complete",
    hint="refund the stored bet of the round, whatever `amount` the cancel carries",
)(flows.undo_ok)
case(
    "bet.insufficient_funds",
    sends="a bet of the balance plus the stake",
    passes="status 800; balance unchanged",
    why="a wallet must never go below zero",
    hint="compare the stake with the balance inside the same atomic step as the debit",
)(flows.insufficient_funds)
case(
    "idempotency.bet_repeat",
    sends="the same bet twice (same transactionId, same body)",
    passes="one debit; the repeat answers status 0 with the original data (a refusal only warns)",
    why="AMBSlot resends whenever an answer is lost",
    hint="store transactionId with the answer and replay it for a repeat",
)(flows.debit_repeat)
case(
    "idempotency.payout_repeat",
    sends="the same payout twice",
    passes="one credit (a refusal of the repeat only warns)",
    why="a repeated win paid twice is money lost by the operator",
    hint="payouts are idempotent by transactionId too",
)(flows.credit_repeat)
case(
    "idempotency.cancel_repeat",
    sends="the same cancel twice",
    passes="one refund (a refusal of the repeat only warns)",
    why="cancels are retried until they succeed",
    hint="a second cancel of a round refunds nothing",
)(flows.undo_repeat)
case(
    "idempotency.same_id_other_amount",
    sends="a bet, then another bet with the same transactionId and round and twice the amount",
    passes="refused (900; another refusal warns); nothing debited",
    why="an id names one operation; a second payload under it is a bug on one side",
    hint="compare the stored payload with the repeat's before replaying",
)(flows.same_id_other_amount)
case(
    "cancel.unknown_round",
    sends="a cancel of a round never bet",
    passes="nothing credited; status 0 with the balance unchanged (a refusal warns)",
    why="a cancel must refund only what was taken; success stops AMBSlot's retries",
    hint="refund only the stored bet of the round; an unknown round refunds nothing",
)(flows.undo_unknown)
case(
    "cancel.late_bet",
    sends="a cancel of a round, then the bet of that round",
    passes="the late bet debits nothing; refused with 997 (another refusal warns)",
    why="AMBSlot already considers that round void; debiting it takes the player's money for nothing",
    hint="remember cancelled unknown rounds and refuse a bet that arrives on one",
)(flows.late_debit)
case(
    "concurrency.same_bet",
    sends="N identical bets at once (`--concurrency`, default 20)",
    passes="exactly one debit; every success answers the same balance",
    why="retries after timeouts arrive in parallel",
    hint="make 'seen this id?' and 'debit' one atomic step (a unique key, a row lock)",
)(flows.same_debit_parallel)
case(
    "concurrency.overdraw",
    sends="N parallel bets on distinct rounds, each worth 60% of the balance",
    passes="at most one succeeds, never below zero; the balance is the start minus the successes",
    why="parallel rounds of one player must not overdraw",
    hint="check and debit under one lock or in one conditional UPDATE",
)(flows.overdraw_parallel)
case(
    "timeout.retry_bet",
    sends="a bet on a connection closed without reading the answer, then the same bet again",
    passes="exactly one debit; the retry answers status 0",
    why="AMBSlot retries the same transactionId after its timeout",
    hint="finish a request even when the caller hangs up, and answer its retry from the stored result",
)(flows.retry_after_abandon)
case(
    "timeout.cancel_abandoned",
    sends="a bet on an abandoned connection, then a cancel of its round",
    passes="the balance is back to where it was",
    why="AMBSlot cancels a round whose bet answer it never saw",
    hint="a cancel must find a bet applied after its caller gave up",
)(flows.undo_after_abandon)
case(
    "future.unknown_fields",
    sends="a balance call and a bet carrying extra fields nobody documented",
    passes="both succeed (a refusal warns)",
    why="providers add fields over time; a strict parser breaks on their next release",
    hint="ignore fields you do not know",
)(flows.unknown_fields)
case(
    "precision.cents",
    sends="99 bets of 0.01 on rounds of their own, then a payout of 0.99",
    passes="every answered balance exact; back to the start",
    why="floats drift by fractions of a cent",
    hint="keep money as Decimal or integer cents, never float",
)(flows.cents)
case(
    "latency.budget",
    sends="nothing: reads the timings of every call of the run",
    passes="no answer slower than 5 s (the document's limit); a p99 above `--latency-budget` warns",
    why="AMBSlot gives up after 5 s, then retries and cancels",
    hint="profile the slowest endpoint; look for locks held across I/O",
)(flows.latency)
