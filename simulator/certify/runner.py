"""The runner: sends what the cases ask for, times and records every exchange, keeps the balance model.

``Run`` owns the HTTP session, the model and the timings of the whole run; each case gets a ``Ctx`` that
records its own exchanges and turns answers into verdicts. Transport lives here too, including the
abandoned call of the ``timeout.*`` cases: the request is written on a raw connection that is then closed
without reading a byte of the answer, as a provider whose own timeout fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
import traceback
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from simulator import jsonio
from simulator.certify.core import FAIL, PASS, WARN, Answer, Case, Exchange, Fail, Model, Result, Unreachable, Verdict
from simulator.certify.target import Target
from simulator.certify.wire import Request, Wallet, redact_headers
from simulator.dialects.client import Prepared

MIN_STAKES = 40  # the suite moves about this many stakes; a poorer player cannot be certified


class NoAnswer(Fail):
    """The wallet did not answer (connection refused or reset, our timeout); ``reason`` says which."""

    def __init__(self, what: str, reason: str, exchange: Exchange | None = None) -> None:
        super().__init__(f"no answer to {what}: {reason}")
        self.reason = reason
        self.exchange = exchange


def _text(body: bytes, limit: int = 4000) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class Run:
    def __init__(
        self,
        target: Target,
        wallet: Wallet,
        *,
        show: Callable[[Exchange], None] | None = None,
        abandon_wait: float = 2.0,
    ) -> None:
        self.target = target
        self.wallet = wallet
        self.show = show
        self.abandon_wait = abandon_wait
        self.model = Model(Decimal(0))
        self.timings: dict[str, list[float]] = {}
        self.prefix = f"cert-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self.results: list[Result] = []

    def new_id(self, kind: str) -> str:
        return f"{self.prefix}-{next(self._ids)}-{kind}"

    def _exchange(self, prepared: Prepared, label: str) -> Exchange:
        return Exchange(
            label, prepared.method, prepared.url, redact_headers(prepared.headers), _text(prepared.body, 2000)
        )

    async def send(self, request: Request, label: str, prepared: Prepared | None = None) -> Answer:
        """Send and read the answer; NoAnswer when there is none (the exchange says why)."""
        prepared = prepared or self.wallet.prepare(request)
        exchange = self._exchange(prepared, label)
        started = time.perf_counter()
        try:
            async with self.wallet.http.request(
                prepared.method, prepared.url, data=prepared.body, headers=prepared.headers
            ) as response:
                raw = await response.read()
                exchange.status = response.status
                exchange.response_headers = {str(k): v for k, v in response.headers.items()}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            exchange.ms = (time.perf_counter() - started) * 1000
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            exchange.note = f"no answer: {reason}"
            self._shown(exchange)
            raise NoAnswer(label, reason, exchange) from None
        exchange.ms = (time.perf_counter() - started) * 1000
        exchange.response_body = _text(raw)
        self.timings.setdefault(request.path, []).append(exchange.ms)
        try:
            body: Any = jsonio.loads(raw)
        except jsonio.JSONError:
            body = raw.decode("utf-8", "replace")
        self._shown(exchange)
        return self.wallet.read(exchange.status or 0, body, exchange)

    async def abandon(self, request: Request, label: str) -> Exchange:
        """Write the request on a fresh connection and close it without reading the answer."""
        prepared = self.wallet.prepare(request)
        exchange = self._exchange(prepared, label)
        parts = urlsplit(prepared.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"{prepared.method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
        head += [f"{k}: {v}" for k, v in prepared.headers.items()]
        head += [f"Content-Length: {len(prepared.body)}", "Connection: close", "", ""]
        started = time.perf_counter()
        try:
            connect = asyncio.open_connection(host, port, ssl=True if parts.scheme == "https" else None)
            _, writer = await asyncio.wait_for(connect, self.target.timeout)
            writer.write("\r\n".join(head).encode("latin-1") + prepared.body)
            await asyncio.wait_for(writer.drain(), self.target.timeout)
            writer.close()  # the answer is never read: the provider's own timeout fired
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.target.timeout)
        except (OSError, TimeoutError) as exc:
            raise NoAnswer(label, f"could not send it: {exc}") from None
        exchange.ms = (time.perf_counter() - started) * 1000
        exchange.note = "abandoned: request sent, connection closed without reading the answer"
        self._shown(exchange)
        return exchange

    def _shown(self, exchange: Exchange) -> None:
        if self.show is not None:
            self.show(exchange)

    async def preflight(self) -> None:
        """The first balance call: proves the wallet is reachable, answers us, and can fund the suite."""
        t = self.target
        try:
            answer = await self.send(self.wallet.balance(), "preflight balance")
        except NoAnswer as exc:
            raise Unreachable(f"cannot reach the wallet at {t.wallet_url}: {exc.reason}") from None
        if not answer.ok or answer.balance is None:
            raise Unreachable(
                f"the wallet at {t.wallet_url} refused the first balance call for player {t.who!r} "
                f"({answer.describe()}): check the credentials, player and currency"
            )
        need = t.amount * MIN_STAKES
        if answer.balance < need:
            raise Unreachable(
                f"player {t.who!r} has {answer.balance} {t.currency}; certify needs at least {need} "
                f"({MIN_STAKES} x --amount): fund the player or lower --amount"
            )
        self.model = Model(answer.balance)

    async def run_case(self, case: Case) -> Result:
        ctx = Ctx(self, case)
        started = time.perf_counter()
        result = Result(case.id, PASS, 0.0, hint=case.hint)
        try:
            await case.run(ctx)
            result.message = ctx.note
            if ctx.warnings:
                result.status, result.message = WARN, "; ".join(ctx.warnings)
                result.expected, result.actual = ctx.warn_expected, ctx.warn_actual
                result.focus = ctx.warn_focus
        except Verdict as verdict:
            result.status, result.message = verdict.status, verdict.message
            result.expected, result.actual = verdict.expected, verdict.actual
        except Exception as exc:  # a bug in a case must not hide the other cases' verdicts
            result.status = FAIL
            result.message = f"certify could not complete the case: {type(exc).__name__}: {exc}"
            result.hint = "this looks like a bug in certify itself; please report it with this output"
            result.details["traceback"] = traceback.format_exc(limit=5)
        if ctx.cleanup or result.status == FAIL:
            await self._tidy(ctx, result)
        result.ms = (time.perf_counter() - started) * 1000
        result.exchanges = ctx.exchanges
        result.findings = ctx.findings
        result.details.update(ctx.details)
        self.results.append(result)
        return result

    async def _tidy(self, ctx: Ctx, result: Result) -> None:
        """After a failure: send the case's cleanup calls unjudged, then let the model adopt the wallet's
        balance, so the next case is judged on its own and one defect is reported once."""
        for request in ctx.cleanup:
            with contextlib.suppress(NoAnswer):
                await self.send(request, "cleanup")
        try:
            answer = await self.send(self.wallet.balance(), "balance (resynchronising the model)")
        except NoAnswer:
            return
        if answer.ok and answer.balance is not None and answer.balance != self.model.balance:
            result.details["resynchronised"] = f"model {self.model.balance} -> wallet {answer.balance}"
            self.model.balance = answer.balance

    async def run(
        self,
        cases: Iterable[Case],
        done: Callable[[Result], None] | None = None,
        starting: Callable[[Case], None] | None = None,
    ) -> list[Result]:
        for case in cases:
            if starting is not None:
                starting(case)
            result = await self.run_case(case)
            if done is not None:
                done(result)
        return self.results


class Ctx:
    """What a case sees: its verbs (send, debit, credit, undo, balance) and its verdict helpers."""

    def __init__(self, run: Run, case: Case) -> None:
        self.run = run
        self.case = case
        self.wallet = run.wallet
        self.target = run.target
        self.amount = run.target.amount
        self.exchanges: list[Exchange] = []
        self.findings: list[str] = []
        self.warnings: list[str] = []
        self.warn_expected: str | None = None
        self.warn_actual: str | None = None
        self.warn_focus = -1
        self.details: dict[str, Any] = {}
        self.note = ""  # the message of a pass (e.g. latency figures)
        self.cleanup: list[Request] = []  # sent unjudged after a failure (e.g. undo an accepted bad debit)

    @property
    def model(self) -> Model:
        return self.run.model

    def new_id(self, kind: str) -> str:
        return self.run.new_id(kind)

    # verdicts

    def warn(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        if not self.warnings and self.exchanges:
            self.warn_focus = len(self.exchanges) - 1
        self.warnings.append(message)
        self.warn_expected = self.warn_expected or expected
        self.warn_actual = self.warn_actual or actual

    def expect_ok(self, answer: Answer, what: str) -> Answer:
        if not answer.ok:
            raise Fail(f"{what} was refused", expected="success", actual=answer.describe())
        return answer

    def expect_refused(self, answer: Answer, what: str, code: Any, *, documented: bool) -> None:
        """``what`` must be refused; with a code other than ``code`` it fails when the provider's document
        names the code, and warns when the code is only our decision."""
        if answer.ok:
            raise Fail(f"{what} was accepted", expected=f"refused with {code!r}", actual=answer.describe())
        if answer.code != code:
            message = f"{what} was refused with {answer.describe()}, not {code!r}"
            if documented:
                raise Fail(message, expected=repr(code), actual=answer.describe())
            self.warn(message, expected=repr(code), actual=answer.describe())

    def reconcile(self, answered: Any, where: str, meaning: str = "") -> None:
        """The wallet's ``answered`` balance must be the model's; else a ``reconcile.*`` finding and a failure."""
        expected = self.model.balance
        finding = self.model.compare(answered, where, self.case.id)
        if finding is not None:
            self.findings.append(finding)
            raise Fail(f"{finding}{f' ({meaning})' if meaning else ''}", expected=str(expected), actual=str(answered))

    # transport

    async def send(self, request: Request, label: str, prepared: Prepared | None = None) -> Answer:
        try:
            answer = await self.run.send(request, label, prepared)
        except NoAnswer as exc:
            if exc.exchange is not None:
                self.exchanges.append(exc.exchange)
            raise
        self.exchanges.append(answer.exchange)
        return answer

    async def try_send(self, request: Request, label: str) -> Answer | None:
        """Like send, but None when the wallet did not answer (the parallel cases count those)."""
        try:
            return await self.send(request, label)
        except NoAnswer:
            return None

    async def abandon(self, request: Request, label: str) -> None:
        self.exchanges.append(await self.run.abandon(request, label))

    # verbs that keep the model

    async def balance(self, where: str) -> Decimal:
        answer = self.expect_ok(await self.send(self.wallet.balance(), f"balance {where}"), f"the balance call {where}")
        self.reconcile(answer.balance, f"balance {where}")
        assert answer.balance is not None
        return answer.balance

    async def applied(
        self, request: Request, label: str, *, debit: Decimal = Decimal(0), credit: Decimal = Decimal(0)
    ) -> Answer:
        """Send a call that must succeed and move the balance by ``credit - debit``; check the answered balance."""
        answer = self.expect_ok(await self.send(request, label), label)
        self.model.debit(debit)
        self.model.credit(credit)
        self.reconcile(answer.balance, f"the answer to {label}")
        return answer

    async def debit(self, amount: Decimal | None = None, label: str | None = None, **extra: Any) -> Request:
        amount = self.amount if amount is None else amount
        request = self.wallet.debit(amount, self.new_id("d"), self.new_id("r"), **extra)
        await self.applied(request, label or self.wallet.debit_word, debit=amount)
        return request

    def debit_request(self, amount: Decimal | None = None, **extra: Any) -> Request:
        return self.wallet.debit(self.amount if amount is None else amount, self.new_id("d"), self.new_id("r"), **extra)

    async def quiet_balance(self) -> Decimal | None:
        """The balance without judging it (polling after an abandoned call)."""
        answer = await self.run.send(self.wallet.balance(), "balance (watching)")
        return answer.balance if answer.ok else None

    async def settle_after_abandon(self, before: Decimal) -> bool:
        """After an abandoned call, watch the balance (up to ``abandon_wait``) until it moves; True if it did.
        A wallet may apply an abandoned call or not; either is allowed, this only lets it finish first."""
        deadline = time.monotonic() + self.run.abandon_wait
        while time.monotonic() < deadline:
            balance = await self.quiet_balance()
            if balance is not None and balance != before:
                return True
            await asyncio.sleep(0.02)
        return False
