"""The AMBSlot cases: the simulator plays AMBSlot against the operator's seamless wallet.

AMBSlot always answers HTTP 200 and puts the outcome in ``status.code``; the document asks for answers
within 5 seconds, which ``latency.budget`` enforces (a slower answer fails). ``/settle`` is opt-in.
"""

from __future__ import annotations

import secrets

from simulator.certify import flows
from simulator.certify.core import Fail, Skip, Suite, shown
from simulator.certify.runner import Ctx
from simulator.certify.wire import AmbslotWallet, number

suite = Suite("ambslot")
case = suite.case


def _wallet(ctx: Ctx) -> AmbslotWallet:
    assert isinstance(ctx.wallet, AmbslotWallet)
    return ctx.wallet


@case(
    "auth.unknown_agent",
    sends="a bet whose `agent` is not the configured one",
    passes="refused, balance unchanged; status 998 (seed 003: invalid agent id)",
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
    passes="status 0 and a balance equal to the model, at `data.wallet.balance` or `data.balance`",
    ours="`data.wallet.balance` a JSON number, `data.username` the player (otherwise a note)",
    why="AMBSlot shows this balance to the player",
    hint='answer {"status": {"code": 0, ...}, "data": {"username", "wallet": {"balance", "lastUpdate"}}}',
)
async def balance_ok(ctx: Ctx) -> None:
    answer = ctx.expect_ok(await ctx.send(ctx.wallet.balance(), "balance"), "the balance call")
    data = answer.body["data"]
    wallet = data.get("wallet")
    raw = wallet.get("balance") if isinstance(wallet, dict) else data.get("balance")
    if isinstance(raw, str):
        ctx.notice(
            "the balance is a string; the simulator writes a number", expected="a JSON number", actual=shown(raw)
        )
    if not isinstance(wallet, dict):
        ctx.notice("the balance is at data.balance; the simulator writes data.wallet.balance")
    if data.get("username") != ctx.target.username:
        ctx.notice(
            "data.username is not the player; the simulator writes it",
            expected=ctx.target.username,
            actual=shown(data.get("username")),
        )
    ctx.reconcile(answer.balance, "the balance answer")


@case(
    "bet.ok",
    sends="a bet of the stake on a new round",
    passes="status 0; `wallet.balance` the balance minus the stake; `balance.before`/`after`, when given, the "
    "balances before and after",
    ours="`data.balance` and `refId` (the transactionId) present, as in seed 003's answer (otherwise a note)",
    why="every round starts here",
    hint="debit exactly `amount` and fill balance.before/after from the same atomic step",
)
async def bet_ok(ctx: Ctx) -> None:
    before = await ctx.balance("before")
    request = ctx.debit_request()
    answer = await ctx.applied(request, "bet", debit=request.amount)
    moves = answer.body["data"].get("balance")
    if not isinstance(moves, dict):
        ctx.notice("the answer has no data.balance {before, after}; seed 003's payout answer has one")
    elif number(moves.get("before")) != before or number(moves.get("after")) != answer.balance:
        raise Fail(
            "data.balance.before/after do not describe the bet",
            expected=f"before {before}, after {answer.balance}",
            actual=shown(moves),
        )
    if answer.body["data"].get("refId") != request.txn:
        ctx.notice(
            "data.refId is not the bet's transactionId",
            expected=request.txn,
            actual=shown(answer.body["data"].get("refId")),
        )
    await ctx.balance("after the bet")


case(
    "payout.ok",
    sends="a bet, then a payout of twice the stake on its round",
    passes="status 0 and the balance plus the win (a refused bet makes it inconclusive)",
    why="wins must reach the player",
    hint="credit exactly `amount` of the payout",
)(flows.credit_ok)


@case(
    "payout.two_payouts",
    sends="a bet, then two payouts on its round: `isEndRound` false, then true",
    passes="both credited (seed 003: `isEndRound` true marks the *last* payout of a round)",
    why="multi-payout rounds (cascades, bonus rounds) pay more than once",
    hint="close a round only on the payout with isEndRound true; key payouts on their own transactionId",
)
async def two_payouts(ctx: Ctx) -> None:
    w = _wallet(ctx)
    bet = await ctx.debit()
    first, second = ctx.amount, ctx.amount * 2
    await ctx.applied(w.credit(bet, first, ctx.new_id("c"), isEndRound=False), "first payout", credit=first)
    await ctx.applied(w.credit(bet, second, ctx.new_id("c"), isEndRound=True), "last payout", credit=second)
    await ctx.balance("after two payouts")


@case(
    "settle.ok",
    sends="a settle (bet and win in one call) on a new round (skipped with `--no-settle`)",
    passes="status 0; the balance minus `bet` plus `amount`. `/settle` is opt-in for the operator: HTTP 404 "
    "or 405 skips the case (not implemented)",
    why="single-call rounds are how many AMBSlot games report",
    hint="debit `bet` and credit `amount` in one atomic step",
)
async def settle_ok(ctx: Ctx) -> None:
    w = _wallet(ctx)
    if not ctx.target.settle:
        raise Skip("not implemented (--no-settle)")
    bet, win = ctx.amount, ctx.amount * 3
    request = w.settle(bet, win, ctx.new_id("s"), ctx.new_id("r"))
    label = f"settle (bet {bet}, win {win})"
    answer = await ctx.send(request, label)
    if answer.http in (404, 405):
        raise Skip(f"not implemented: /settle answered HTTP {answer.http} (it is opt-in; --no-settle skips it)")
    ctx.expect_ok(answer, label)
    ctx.model.debit(bet)
    ctx.model.credit(win)
    ctx.reconcile(answer.balance, f"the answer to {label}")
    await ctx.balance("after the settle")


case(
    "cancel.ok",
    sends="a bet, then a cancel of its round",
    passes="status 0 and the stake refunded",
    ours="the cancel carries its own transactionId (`--cancel-id own`); a wallet that accepts only the bet's "
    "gets one note, and certify uses the bet's id from then on",
    why="AMBSlot cancels every round it could not complete",
    hint="refund the stored bet of the round, whatever `amount` the cancel carries",
)(flows.undo_ok)


@case(
    "cancel.other_amount",
    sends="a bet, then a cancel of its round carrying twice the stake as `amount`",
    passes="the refund is the stored bet, never the cancel's amount",
    ours="the cancel succeeds (a refusal warns: AMBSlot retries it)",
    why="a cancel's amount is the provider's idea of the stake; the wallet's record is what was taken",
    hint="refund the bet you stored for the round",
)
async def cancel_other_amount(ctx: Ctx) -> None:
    w = _wallet(ctx)
    bet = await ctx.debit()
    label = f"cancel carrying amount {bet.amount * 2} for a bet of {bet.amount}"
    _, answer = await ctx.send_undo(bet, label, amount=bet.amount * 2)
    if answer.ok:
        ctx.model.credit(bet.amount)
        ctx.reconcile(answer.balance, "the answer to the cancel", "the refund must be the stored bet")
    else:
        ctx.already_reported(answer, "the cancel", w.UNDO_CASE)
        ctx.warn(
            f"a cancel whose amount differs from the bet was refused ({answer.describe()}): AMBSlot retries it",
            expected="success, refunding the stored bet",
            actual=answer.describe(),
        )
    await ctx.balance("after the cancel")


case(
    "bet.insufficient_funds",
    sends="a bet of the balance plus the stake",
    passes="refused, balance unchanged",
    ours="status 800 (another permanent refusal is a note)",
    why="a wallet must never go below zero",
    hint="compare the stake with the balance inside the same atomic step as the debit",
)(flows.insufficient_funds)
case(
    "idempotency.bet_repeat",
    sends="the same bet twice (same transactionId, same body)",
    passes="one debit",
    ours="the repeat answers status 0 with the original data (a refusal such as 900 is a note; 1601 or 999 warn)",
    why="AMBSlot resends whenever an answer is lost",
    hint="store transactionId with the answer and replay it for a repeat",
)(flows.debit_repeat)
case(
    "idempotency.payout_repeat",
    sends="the same payout twice",
    passes="one credit",
    ours="the repeat answers status 0 (a refusal is a note; a retry code warns)",
    why="a repeated win paid twice is money lost by the operator",
    hint="payouts are idempotent by transactionId too",
)(flows.credit_repeat)
case(
    "idempotency.cancel_repeat",
    sends="the same cancel twice",
    passes="one refund",
    ours="the repeat answers status 0 (a refusal is a note; a retry code warns)",
    why="cancels are retried until they succeed",
    hint="a second cancel of a round refunds nothing",
)(flows.undo_repeat)
case(
    "idempotency.same_id_other_amount",
    sends="a bet, then another bet with the same transactionId and round and twice the amount",
    passes="refused, nothing debited (a success that moved nothing fails)",
    ours="status 900 (another refusal is a note; a retry code warns)",
    why="an id names one operation; a second payload under it is a bug on one side",
    hint="compare the stored payload with the repeat's before replaying",
)(flows.same_id_other_amount)
case(
    "cancel.unknown_round",
    sends="a cancel of a round never bet",
    passes="nothing credited; not a retry code (1600-1602, 999, HTTP 5xx): AMBSlot would retry it for ever",
    ours="status 0 with the balance unchanged (a refusal such as 997 is a note)",
    why="a cancel must refund only what was taken, and must end AMBSlot's retries",
    hint="refund only the stored bet of the round; an unknown round refunds nothing",
)(flows.undo_unknown)
case(
    "cancel.second_cancel",
    sends="a bet, a cancel of its round, then a second cancel under a new transactionId",
    passes="one refund: the second cancel refunds nothing (success or refusal)",
    ours="a retry code to the second one warns",
    why="AMBSlot cancels again when it lost the first answer",
    hint="mark the round cancelled and refund its bet once, whatever the cancel's own id",
)(flows.second_undo)
case(
    "cancel.late_bet",
    sends="a cancel of a round, then the bet of that round",
    passes="the late bet debits nothing",
    ours="refused with 997 (another refusal, or success without a debit, is a note)",
    why="AMBSlot already considers that round void; debiting it takes the player's money for nothing",
    hint="remember cancelled unknown rounds and refuse a bet that arrives on one",
)(flows.late_debit)
case(
    "bet.two_on_one_round",
    sends="two bets with their own transactionIds on one `roundId`",
    passes="the second is debited, or refused with the balance unchanged; a success that took nothing fails",
    ours="refused with 900 (accepting and debiting it, or another refusal, is a note)",
    why="a wallet keyed on the round answers the second bet from the first and never takes it",
    hint="key idempotency on transactionId, never on the round",
)(flows.two_debits_one_round)
case(
    "player.unknown",
    sends="a bet for a username the wallet never saw",
    passes="a permanent answer: a refusal such as 908, or success; never a retry code (1600-1602, 999, "
    "HTTP 5xx), which AMBSlot retries for ever",
    ours="the simulator creates the player (refusing with 908 is as good)",
    why="a retried refusal never ends",
    hint="answer an unknown username with 908",
)(flows.unknown_player)
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
    passes="at most one succeeds, never below zero; the balance is the start minus the successes (a refused "
    "tidy-up cancel makes it inconclusive)",
    why="parallel rounds of one player must not overdraw",
    hint="check and debit under one lock or in one conditional UPDATE",
)(flows.overdraw_parallel)
case(
    "timeout.retry_bet",
    sends="a bet on a connection closed without reading the answer, then the same bet again",
    passes="at most one debit; a refused retry must not have moved money, unless it says 900",
    ours="the retry answers status 0 (a refusal is a note)",
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
    passes="no money wrong",
    ours="both succeed (a refusal warns: AMBSlot's next release may add fields)",
    why="providers add fields over time; a strict parser breaks on their next release",
    hint="ignore fields you do not know",
)(flows.unknown_fields)
case(
    "precision.odd_amounts",
    sends="bets and payouts of 0.29, 0.57, 1.13, 4.35 and 0.07",
    passes="every answered balance exact to the cent",
    why="`int(float(x) * 100)` turns 0.29 into 28 cents",
    hint="parse amounts as Decimal (or integer cents from the text), never through float",
)(flows.odd_amounts)
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
    passes="no answer slower than 5 s (AMBSlot's limit; `--latency-budget` sets another)",
    why="AMBSlot gives up after 5 s, then retries and cancels",
    hint="profile the slowest endpoint; look for locks held across I/O",
)(flows.latency)
