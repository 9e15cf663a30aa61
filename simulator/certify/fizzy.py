"""The Fizzy Bubbly cases: the simulator plays the game provider against the operator's wallet.

Order matters only twice: ``precision.cents`` runs after every other money case (a float-based wallet
drifts there and nowhere else), and ``latency.budget`` runs last because it judges every call of the run.
"""

from __future__ import annotations

import secrets

from simulator import jsonio
from simulator.certify import flows
from simulator.certify.core import Fail, Inconclusive, Skip, Suite, shown
from simulator.certify.runner import Ctx
from simulator.certify.wire import FizzyWallet
from simulator.dialects.client import FizzyClient, Prepared, encode

suite = Suite("fizzy")
case = suite.case

_AUTH_PASSES = "HTTP 401 `ERROR_INVALID_SIGNATURE`; balance unchanged"
_AUTH_WHY = "anyone who can reach the wallet could move money"
_AUTH_HINT = "verify Signature = HMAC-SHA256(private key, POST\\nURL\\nMD5(raw body)) before parsing, for every key"


def _wallet(ctx: Ctx) -> FizzyWallet:
    assert isinstance(ctx.wallet, FizzyWallet)
    return ctx.wallet


async def _refused_auth(ctx: Ctx, what: str, prepared: Prepared) -> None:
    """A withdraw whose authentication is broken must be refused with 401 and change nothing."""
    w = _wallet(ctx)
    await ctx.balance("before")
    request = ctx.debit_request()
    answer = await ctx.send(request, what, prepared)
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u")))
    ctx.expect_refused(answer, what, w.AUTH, documented=True)
    if answer.http != 401:
        raise Fail(f"{what} was refused with HTTP {answer.http}", expected="HTTP 401", actual=answer.describe())
    await ctx.balance(f"after the {what}")


def _signed(ctx: Ctx) -> tuple[Prepared, FizzyWallet]:
    w = _wallet(ctx)
    return w.prepare(ctx.debit_request()), w


@case(
    "auth.missing_signature",
    sends="a withdraw without the `Signature` header",
    passes=_AUTH_PASSES,
    why=_AUTH_WHY,
    hint=_AUTH_HINT,
)
async def missing_signature(ctx: Ctx) -> None:
    prepared, _ = _signed(ctx)
    prepared.headers.pop("Signature")
    await _refused_auth(ctx, "withdraw without a Signature", prepared)


@case(
    "auth.wrong_signature",
    sends="a withdraw signed with another private key",
    passes=_AUTH_PASSES,
    why=_AUTH_WHY,
    hint=_AUTH_HINT,
)
async def wrong_signature(ctx: Ctx) -> None:
    w = _wallet(ctx)
    request = ctx.debit_request()
    prepared = w.client.prepare(request.path, request.fields, private_key="certify-wrong-" + secrets.token_hex(8))
    await _refused_auth(ctx, "withdraw with a wrong signature", prepared)


@case(
    "auth.unknown_public_key",
    sends="a withdraw with an unknown `Public-Key`, correctly signed with the real private key",
    passes=_AUTH_PASSES,
    why="a key the operator never issued must open nothing",
    hint="look the Public-Key up first and refuse unknown ones before checking the signature",
)
async def unknown_public_key(ctx: Ctx) -> None:
    t = ctx.target
    request = ctx.debit_request()
    stranger = FizzyClient(t.wallet_url, "certify-unknown-" + secrets.token_hex(6), t.private_key)
    await _refused_auth(ctx, "withdraw with an unknown Public-Key", stranger.prepare(request.path, request.fields))


@case(
    "auth.body_tampered",
    sends="a signed withdraw whose body is altered after signing (the amount doubled)",
    passes=_AUTH_PASSES,
    why="the signature covers the body's MD5; a proxy or attacker must not change the amount",
    hint="compute the MD5 over the raw body bytes as received, not over a re-serialised object",
)
async def body_tampered(ctx: Ctx) -> None:
    prepared, _ = _signed(ctx)
    fields = jsonio.loads(prepared.body)
    fields["amount"] = fields["cashAmount"] = fields["amount"] * 2
    prepared.body = encode(fields)
    await _refused_auth(ctx, "withdraw with a tampered body", prepared)


@case(
    "balance.ok",
    sends="`/wallet/balance` for the player",
    passes="HTTP 200, `balance` equal to the model, `currency` the player's (seed 002: both required)",
    ours="`balance` a JSON number (a numeric string is a warning: the document types it `number`)",
    why="the provider shows this balance to the player",
    hint='answer {"balance": <number>, "currency": <code>}; write numbers, not strings',
)
async def balance_ok(ctx: Ctx) -> None:
    answer = ctx.expect_ok(await ctx.send(ctx.wallet.balance(), "balance"), "the balance call")
    raw = answer.body.get("balance")
    if isinstance(raw, str):
        ctx.warn("the balance is a string; the document types it `number`", expected="a JSON number", actual=shown(raw))
    elif answer.balance is None:
        raise Fail("the balance is not a number", expected="a JSON number", actual=shown(raw))
    if answer.body.get("currency") != ctx.target.currency:
        raise Fail("wrong currency", expected=ctx.target.currency, actual=shown(answer.body.get("currency")))
    ctx.reconcile(answer.balance, "the balance answer")


case(
    "withdraw.ok",
    sends="a withdraw of the stake",
    passes="HTTP 200 with the balance minus the stake; a balance call agrees",
    why="every bet starts here",
    hint="debit exactly `amount` and answer the balance after the debit",
)(flows.debit_ok)
case(
    "deposit.ok",
    sends="a withdraw, then a deposit of twice the stake naming it",
    passes="HTTP 200 with the balance plus the win (a refused withdraw makes it inconclusive)",
    why="wins must reach the player",
    hint="credit exactly `amount`; `withdrawTransactionId` names the withdraw of the round",
)(flows.credit_ok)
case(
    "rollback.ok",
    sends="a withdraw, then a rollback of it",
    passes="HTTP 200 and the stake refunded",
    why="the provider rolls back every bet it could not complete",
    hint="refund the stored amount of the withdraw named by `withdrawTransactionId`",
)(flows.undo_ok)
case(
    "withdraw.insufficient_funds",
    sends="a withdraw of the balance plus the stake",
    passes="HTTP 400 `ERROR_TRANSACTION_INSUFFICIENT_FUNDS` (seed 002); balance unchanged",
    why="a wallet must never go below zero",
    hint="compare the amount with the balance inside the same atomic step as the debit",
)(flows.insufficient_funds)
case(
    "idempotency.withdraw_repeat",
    sends="the same withdraw twice (same id, same bytes)",
    passes="one debit",
    ours="the repeat answers 200 with the original body (a refusal is a note; a retry code, HTTP 5xx, warns)",
    why="providers resend whenever an answer is lost",
    hint="store transactionId with the result and answer a repeat from the store",
)(flows.debit_repeat)
case(
    "idempotency.deposit_repeat",
    sends="the same deposit twice",
    passes="one credit",
    ours="the repeat answers 200 with the original body (a refusal is a note; a retry code warns)",
    why="a repeated win paid twice is money lost by the operator",
    hint="deposits are idempotent by transactionId too",
)(flows.credit_repeat)
case(
    "idempotency.rollback_repeat",
    sends="the same rollback twice",
    passes="one refund",
    ours="the repeat answers 200 (a refusal is a note; a retry code warns)",
    why="rollbacks are retried until they succeed",
    hint="a rollback of an already rolled-back withdraw refunds nothing",
)(flows.undo_repeat)
case(
    "idempotency.same_id_other_amount",
    sends="a withdraw, then another withdraw with the same transactionId and twice the amount",
    passes="refused, nothing debited (a success that moved nothing fails: the provider thinks it was taken)",
    ours="`ERROR_TRANSACTION_DUPLICATE` (another refusal is a note; a retry code warns)",
    why="an id names one operation; a second payload under it is a bug on one side",
    hint="compare the stored payload with the repeat's before replaying",
)(flows.same_id_other_amount)
case(
    "rollback.unknown_withdraw",
    sends="a rollback naming a withdraw never sent",
    passes="nothing credited; not HTTP 500 (`ERROR_TIMEOUT`, `ERROR_UNKNOWN_ERROR`): the provider would retry "
    "it for ever",
    ours="`ERROR_ROLLBACK_TRANSACTION_NOT_FOUND` (success with the balance unchanged, or another 400, is a note)",
    why="a rollback must refund only what was taken, and must end the provider's retries",
    hint="refund only a withdraw you hold; answer an unknown one with a 400, never a 500",
)(flows.undo_unknown)
case(
    "rollback.second_rollback",
    sends="a withdraw, a rollback of it, then a second rollback under a new rollback id",
    passes="one refund: the second rollback refunds nothing (success or refusal)",
    ours="a retry code (HTTP 5xx) to the second one warns",
    why="a provider that lost the first answer may roll back again under a new id",
    hint="mark the withdraw as rolled back and refund it once, whatever the rollback's own id",
)(flows.second_undo)
case(
    "rollback.late_withdraw",
    sends="a rollback of a withdraw not yet sent, then that withdraw",
    passes="the late withdraw debits nothing",
    ours="refused with `ERROR_BAD_REQUEST` (another refusal, or success without a debit, is a note)",
    why="the provider already considers that bet void; debiting it takes the player's money for nothing",
    hint="remember the ids of rollbacks whose withdraw was unknown and refuse that withdraw when it arrives",
)(flows.late_debit)


@case(
    "deposit.unknown_withdraw",
    sends="a deposit whose `withdrawTransactionId` names a withdraw never sent",
    passes="nothing credited (seed 002 lists `ERROR_TRANSACTION_WITHDRAW_NOT_FOUND`)",
    ours="that code (another permanent refusal is a note; success without a credit, or a retry code, warns)",
    why="a win for a bet that never happened is money given away",
    hint="look the withdraw up before crediting and refuse an unknown one",
)
async def deposit_unknown_withdraw(ctx: Ctx) -> None:
    w = _wallet(ctx)
    await ctx.balance("before")
    ghost = ctx.debit_request()  # never sent
    answer = await ctx.send(w.credit(ghost, ctx.amount, ctx.new_id("c")), "deposit naming a withdraw never sent")
    if answer.ok:
        ctx.reconcile(answer.balance, "the answer to the deposit", "it credited a win for a withdraw that never was")
        ctx.warn(
            "a deposit naming a withdraw that does not exist answered success without crediting: the provider "
            "believes the win was paid",
            expected=shown(w.NO_WITHDRAW),
            actual=answer.describe(),
        )
    elif w.retried(answer):
        ctx.warn(
            f"a deposit naming a withdraw that does not exist was answered {answer.describe()}: the provider "
            "retries it for ever",
            expected=shown(w.NO_WITHDRAW),
            actual=answer.describe(),
        )
    else:
        ctx.expect_refused(answer, "a deposit naming a withdraw never sent", w.NO_WITHDRAW, documented=False)
    await ctx.balance("after the deposit")


case(
    "withdraw.two_on_one_round",
    sends="two withdraws with their own transactionIds on one `gameRoundId`",
    passes="the second is debited, or refused with the balance unchanged; a success that took nothing fails",
    ours="both debited (a refusal of the second is a note)",
    why="a wallet keyed on the round answers the second bet from the first and never takes it",
    hint="key idempotency on transactionId, never on the round",
)(flows.two_debits_one_round)
case(
    "player.unknown",
    sends="a withdraw for a player the wallet never saw",
    passes="a permanent answer: a refusal (any 400) or success; never HTTP 500 (`ERROR_TIMEOUT`), which the "
    "provider retries for ever",
    ours="the simulator creates the player (refusing is as good)",
    why="a retried refusal never ends",
    hint="answer an unknown player with a 400 such as `ERROR_BAD_REQUEST` or `ERROR_INVALID_SESSION`",
)(flows.unknown_player)
case(
    "concurrency.same_withdraw",
    sends="N identical withdraws at once (`--concurrency`, default 20)",
    passes="exactly one debit; every success answers the same balance",
    why="providers retry in parallel after timeouts",
    hint="make 'seen this id?' and 'debit' one atomic step (a unique key, a row lock)",
)(flows.same_debit_parallel)
case(
    "concurrency.overdraw",
    sends="N parallel distinct withdraws, each worth 60% of the balance",
    passes="at most one succeeds, never below zero; the balance is the start minus the successes (a refused "
    "tidy-up rollback makes it inconclusive)",
    why="parallel rounds of one player must not overdraw",
    hint="check and debit under one lock or in one conditional UPDATE",
)(flows.overdraw_parallel)
case(
    "timeout.retry_withdraw",
    sends="a withdraw on a connection closed without reading the answer, then the same withdraw again",
    passes="at most one debit; a refused retry must not have moved money, unless it says `ERROR_TRANSACTION_DUPLICATE`",
    ours="the retry answers 200 (a refusal is a note)",
    why="a provider whose timeout fired retries the same id",
    hint="finish a request even when the caller hangs up, and answer its retry from the stored result",
)(flows.retry_after_abandon)
case(
    "timeout.rollback_abandoned",
    sends="a withdraw on an abandoned connection, then a rollback of it",
    passes="the balance is back to where it was",
    why="the provider rolls back a bet whose answer it never saw",
    hint="a rollback must find a withdraw applied after its caller gave up",
)(flows.undo_after_abandon)
case(
    "future.unknown_fields",
    sends="a balance call and a withdraw carrying extra fields nobody documented",
    passes="no money wrong",
    ours="both succeed (a refusal warns: the provider's next release may add fields)",
    why="providers add fields over time; a strict parser breaks on their next release",
    hint="ignore fields you do not know",
)(flows.unknown_fields)
case(
    "precision.odd_amounts",
    sends="withdraws and deposits of 0.29, 0.57, 1.13, 4.35 and 0.07",
    passes="every answered balance exact to the cent",
    why="`int(float(x) * 100)` turns 0.29 into 28 cents",
    hint="parse amounts as Decimal (or integer cents from the text), never through float",
)(flows.odd_amounts)
case(
    "precision.cents",
    sends="99 withdraws of 0.01, then a deposit of 0.99",
    passes="every answered balance exact; back to the start",
    why="floats drift by fractions of a cent",
    hint="keep money as Decimal or integer cents, never float",
)(flows.cents)
case(
    "latency.budget",
    sends="nothing: reads the timings of every call of the run",
    passes="p50/p99 per endpoint reported; with `--latency-budget`, no answer slower than it",
    why="slow wallets make the provider time out, retry and roll back",
    hint="profile the slowest endpoint; look for locks held across I/O",
)(flows.latency)


@case(
    "withdraw.blocked_player",
    sends="a withdraw for `--blocked-player` in `--blocked-session` (skipped without a player)",
    passes="refused, nothing debited; HTTP 400 `ERROR_BAD_REQUEST_PLAYER_BLOCKED` (seed 002)",
    ours="without `--blocked-session` certify sends the player's session; a refusal of it makes the case inconclusive",
    why="a blocked player must not be able to bet",
    hint="check the player's status before debiting",
)
async def blocked_player(ctx: Ctx) -> None:
    w = _wallet(ctx)
    t = ctx.target
    player = t.blocked_player
    if not player:
        raise Skip("no --blocked-player given")
    session = t.blocked_session or t.session
    request = w.debit(ctx.amount, ctx.new_id("d"), ctx.new_id("r"), player=player, session=session)
    answer = await ctx.send(request, "withdraw for the blocked player")
    if answer.ok:
        ctx.cleanup.append(w.undo(request, ctx.new_id("u"), player=player, session=session))
    if not answer.ok and answer.code != BLOCKED and not t.blocked_session:
        raise Inconclusive(
            f"the withdraw for the blocked player was refused with {answer.describe()}, maybe for its session "
            f"({session!r} belongs to {t.player!r}): give --blocked-session, a session of {player!r}",
            expected=shown(BLOCKED),
            actual=answer.describe(),
        )
    ctx.expect_refused(answer, "a withdraw of a blocked player", BLOCKED, documented=True)


BLOCKED = "ERROR_BAD_REQUEST_PLAYER_BLOCKED"

# latency.budget judges every call, so it stays last
suite.cases.sort(key=lambda c: c.id == "latency.budget")
