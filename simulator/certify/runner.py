"""The runner: sends what the cases ask for, times and records every exchange, keeps the balance model.

``Run`` owns the HTTP session, the model and the timings of the whole run; each case gets a ``Ctx`` that
records its own exchanges and turns answers into verdicts. Transport lives here too, including the
abandoned call of the ``timeout.*`` cases: the request is written on a raw connection that is then closed
without reading a byte of the answer, as a provider whose own timeout fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
import time
import traceback
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from simulator import jsonio
from simulator.certify.core import (
    FAIL,
    INCONCLUSIVE,
    NOTE,
    PASS,
    SKIP,
    WARN,
    Answer,
    Case,
    Exchange,
    Fail,
    Inconclusive,
    Model,
    Result,
    Unreachable,
    Verdict,
    shown,
)
from simulator.certify.target import Target
from simulator.certify.wire import AmbslotWallet, Request, Wallet, redact_headers
from simulator.dialects.client import Prepared

MIN_STAKES = 40  # the suite moves about this many stakes; a poorer player cannot be certified
LATENCY_CASE = "latency.budget"
NOTE_HINT = (
    "nothing to fix: the document allows this choice; it differs from the simulator's, so tests you run "
    "against the simulator may see other answers than your wallet gives"
)  # makes no call: it judges the timings, so it runs even past the time budget


class NoAnswer(Fail):
    """The wallet did not answer (connection refused or reset, our timeout); ``reason`` says which."""

    def __init__(self, what: str, reason: str, exchange: Exchange | None = None, *, message: str = "") -> None:
        super().__init__(message or f"no answer to {what}: {reason}")
        self.reason = reason
        self.exchange = exchange


class Unusable(NoAnswer):
    """An answer certify will not use: larger than ``max_body``, or a redirect (never followed: the
    provider would not follow it either, and the request's credentials must not travel to another origin)."""


def _text(body: bytes, limit: int = 4000) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Run:
    def __init__(
        self,
        target: Target,
        wallet: Wallet,
        *,
        show: Callable[[Exchange], None] | None = None,
        abandon_wait: float = 2.0,
        max_seconds: float | None = None,
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
        self.max_seconds = max_seconds
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.cancel_probed = False  # AMBSlot: the bet's-id convention was tried once already

    def failed(self, case_id: str) -> bool:
        """``case_id`` already ran in this run and failed (a later case refused the same way defers to it)."""
        return any(r.id == case_id and r.status == FAIL for r in self.results)

    def remaining(self) -> float:
        """Seconds left in the time budget (``inf`` without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def new_id(self, kind: str) -> str:
        return f"{self.prefix}-{next(self._ids)}-{kind}"

    def _exchange(self, prepared: Prepared, label: str) -> Exchange:
        return Exchange(
            label, prepared.method, prepared.url, redact_headers(prepared.headers), _text(prepared.body, 2000)
        )

    async def _read(self, response: aiohttp.ClientResponse, label: str, exchange: Exchange) -> bytes:
        """The body, at most ``max_body`` bytes: a larger answer is refused by its size, unread."""
        cap = self.target.max_body
        size = response.content_length
        if size is not None and size > cap:
            raise self._oversized(label, exchange, f"{size} bytes (Content-Length)")
        chunks: list[bytes] = []
        read = 0
        while True:
            chunk = await response.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            read += len(chunk)
            if read > cap:
                raise self._oversized(label, exchange, f"more than {cap} bytes (certify stopped reading)")
            chunks.append(chunk)

    def _oversized(self, label: str, exchange: Exchange, size: str) -> Unusable:
        exchange.note = f"answer too large: {size}"
        self._shown(exchange)
        message = (
            f"the answer to {label} is {size}, over certify's limit of {self.target.max_body} bytes "
            "(--max-body): a wallet answer is a few hundred bytes"
        )
        return Unusable(label, f"the answer is {size}", exchange, message=message)

    def _redirected(self, label: str, exchange: Exchange, location: str) -> Unusable:
        target = urljoin(exchange.url, location) if location else "(no Location header)"
        other = bool(location) and _origin(target) != _origin(exchange.url)
        where = "another origin: the request's credentials must not travel there" if other else "the same origin"
        message = (
            f"the wallet answered {label} with HTTP {exchange.status}, a redirect to {target} ({where}); "
            "certify does not follow redirects, and a provider would not either"
        )
        exchange.note = f"redirect to {target}, not followed"
        return Unusable(label, f"HTTP {exchange.status} redirect to {target}", exchange, message=message)

    async def send(self, request: Request, label: str, prepared: Prepared | None = None) -> Answer:
        """Send and read the answer; NoAnswer when there is none (the exchange says why)."""
        prepared = prepared or self.wallet.prepare(request)
        exchange = self._exchange(prepared, label)
        # the time budget (--max-seconds) is enforced around each case, which then ends inconclusive: a call
        # cut short by it must not read as a wallet that did not answer
        started = time.perf_counter()
        try:
            async with self.wallet.http.request(
                prepared.method,
                prepared.url,
                data=prepared.body,
                headers=prepared.headers,
                allow_redirects=False,
            ) as response:
                exchange.status = response.status
                exchange.response_headers = {str(k): v for k, v in response.headers.items()}
                if 300 <= response.status < 400:
                    exchange.ms = (time.perf_counter() - started) * 1000
                    self._shown(exchange)
                    raise self._redirected(label, exchange, response.headers.get("Location", ""))
                raw = await self._read(response, label, exchange)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            exchange.ms = (time.perf_counter() - started) * 1000
            exchange.status = None
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if isinstance(exc, TimeoutError):
                self.timings.setdefault(request.path, []).append(exchange.ms)  # latency.budget judges it too
                reason = f"no answer within {self.target.timeout:g} s (--timeout)"
            exchange.note = f"no answer: {reason}"
            self._shown(exchange)
            raise NoAnswer(label, reason, exchange) from None
        exchange.ms = (time.perf_counter() - started) * 1000
        exchange.response_body = _text(raw)
        self.timings.setdefault(request.path, []).append(exchange.ms)
        if exchange.status == 401 and "string_to_sign" in prepared.notes:
            exchange.signed = {
                "string_signed": prepared.notes["string_to_sign"],
                "body_md5": hashlib.md5(prepared.body).hexdigest().upper(),
                "signature_sent": prepared.headers.get("Signature", "(none)"),
            }
        try:
            body: Any = jsonio.loads_bounded(raw)
        except jsonio.JSONError as exc:
            body = raw.decode("utf-8", "replace")
            exchange.note = f"not JSON certify can read: {exc}"
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
        except Unusable as exc:
            raise Unreachable(f"the first balance call: {exc.message}", exc.exchange) from None
        except NoAnswer as exc:
            raise Unreachable(f"cannot reach the wallet at {t.wallet_url}: {exc.reason}", exc.exchange) from None
        if not answer.ok or answer.balance is None:
            what = "could not read" if answer.unreadable else "refused"
            details: dict[str, Any] = {}
            message = (
                f"the wallet at {t.wallet_url} {what} the first balance call for player {t.who!r} "
                f"({answer.describe()}): check the credentials, player and currency"
            )
            signed = answer.exchange.signed
            if signed:
                details["signed"] = signed
                message += (
                    "; certify signed this string (METHOD, URL, MD5 of the body, one per line): "
                    f"{shown(signed['string_signed'], 2000)}, body MD5 {signed['body_md5']}, "
                    f"signature sent {signed['signature_sent']}: compare them with your own"
                )
            raise Unreachable(message, answer.exchange, details)
        need = t.amount * MIN_STAKES
        if answer.balance < need:
            raise Unreachable(
                f"player {t.who!r} has {answer.balance} {t.currency}; certify needs at least {need} "
                f"({MIN_STAKES} x --amount): fund the player or lower --amount",
                answer.exchange,
            )
        self.model = Model(answer.balance)

    def out_of_time(self, case: Case) -> Result:
        return Result(
            case.id,
            SKIP,
            0.0,
            f"time budget: not reached within --max-seconds {self.max_seconds:g}",
            hint=case.hint,
        )

    async def run_case(self, case: Case) -> Result:
        ctx = Ctx(self, case)
        started = time.perf_counter()
        result = Result(case.id, PASS, 0.0, hint=case.hint)
        timed = case.id != LATENCY_CASE and self.deadline is not None
        try:
            async with asyncio.timeout_at(self.deadline if timed else None):
                await case.run(ctx)
            result.message = ctx.passed
            if ctx.warnings:
                result.status, result.message = WARN, "; ".join(ctx.warnings + [f"note: {n}" for n in ctx.notes])
                result.expected, result.actual = ctx.warn_expected, ctx.warn_actual
                result.focus = ctx.warn_focus
            elif ctx.notes:
                result.status, result.message = NOTE, "; ".join(ctx.notes)
                result.hint = NOTE_HINT
                result.expected, result.actual = ctx.note_expected, ctx.note_actual
                result.focus = ctx.note_focus
        except Verdict as verdict:
            result.status, result.message = verdict.status, verdict.message
            result.expected, result.actual = verdict.expected, verdict.actual
        except TimeoutError:
            result.status = INCONCLUSIVE
            result.message = f"time budget: --max-seconds {self.max_seconds:g} ran out during the case"
        except Exception as exc:  # a bug in a case must not hide the other cases' verdicts
            result.status = FAIL
            result.message = f"certify could not complete the case: {type(exc).__name__}: {exc}"
            result.hint = "this looks like a bug in certify itself; please report it with this output"
            result.details["traceback"] = traceback.format_exc(limit=5)
        if (ctx.cleanup or result.status in (FAIL, INCONCLUSIVE)) and self.remaining() > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self.deadline):
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
        """Every case in order; once the time budget is spent the rest are skipped ("time budget"), except
        ``latency.budget``, which makes no call and judges the timings gathered so far."""
        for case in cases:
            if starting is not None:
                starting(case)
            if self.remaining() <= 0 and case.id != LATENCY_CASE:
                result = self.out_of_time(case)
                self.results.append(result)
            else:
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
        self.notes: list[str] = []
        self.note_expected: str | None = None
        self.note_actual: str | None = None
        self.note_focus = -1
        self.details: dict[str, Any] = {}
        self.passed = ""  # the message of a pass (e.g. latency figures)
        self.cleanup: list[Request] = []  # sent unjudged after a failure (e.g. undo an accepted bad debit)
        self.last_undo: Request | None = None  # the undo request :meth:`undo` had accepted last

    @property
    def model(self) -> Model:
        return self.run.model

    def new_id(self, kind: str) -> str:
        return self.run.new_id(kind)

    # verdicts

    def warn(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        """A concrete risk the document does not rule out: counted, but does not fail the run."""
        if not self.warnings and self.exchanges:
            self.warn_focus = len(self.exchanges) - 1
        self.warnings.append(message)
        self.warn_expected = self.warn_expected or expected
        self.warn_actual = self.warn_actual or actual

    def notice(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        """The document is silent and the wallet chose differently from the simulator: shown, never counted."""
        if not self.notes and self.exchanges:
            self.note_focus = len(self.exchanges) - 1
        self.notes.append(message)
        self.note_expected = self.note_expected or expected
        self.note_actual = self.note_actual or actual

    def expect_ok(self, answer: Answer, what: str) -> Answer:
        if answer.unreadable:
            raise Fail(
                f"{what}: certify could not read the success", expected="a readable success", actual=answer.describe()
            )
        if not answer.ok:
            raise Fail(f"{what} was refused", expected="success", actual=answer.describe())
        return answer

    def expect_refused(self, answer: Answer, what: str, code: Any, *, documented: bool) -> None:
        """``what`` must be refused; with a code other than ``code`` it fails when the provider's document
        names the code for this situation, and is a note when the code is only our decision."""
        if answer.ok:
            raise Fail(f"{what} was accepted", expected=f"refused with {shown(code)}", actual=answer.describe())
        if answer.code != code:
            message = f"{what} was refused with {answer.describe()}, not {shown(code)}"
            if documented:
                raise Fail(message, expected=shown(code), actual=answer.describe())
            self.notice(
                f"{message} (the document does not say which code; {shown(code)} is ours)",
                expected=shown(code),
                actual=answer.describe(),
            )

    def reconcile(self, answered: Any, where: str, meaning: str = "") -> None:
        """The wallet's ``answered`` balance must be the model's; else a ``reconcile.*`` finding and a failure."""
        expected = self.model.balance
        finding = self.model.compare(answered, where, self.case.id)
        if finding is not None:
            self.findings.append(finding)
            raise Fail(f"{finding}{f' ({meaning})' if meaning else ''}", expected=str(expected), actual=shown(answered))

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

    def already_reported(self, answer: Answer, what: str, owner: str) -> None:
        """``answer`` refused ``what``, which ``owner`` judges and already failed: inconclusive, not a
        second report of the same defect."""
        if not answer.ok and self.run.failed(owner):
            raise Inconclusive(
                f"{what} {answer.refused} ({answer.describe()}), as in `{owner}`, which already reports it",
                actual=answer.describe(),
            )

    def prerequisite(self, answer: Answer, what: str, owner: str) -> None:
        """A step the case needs but does not judge was refused: the case is inconclusive, and ``owner``
        (the case judging that step on its own) reports the defect, once."""
        if not answer.ok:
            raise Inconclusive(
                f"{what} {answer.refused} ({answer.describe()}), so this case could not be judged; "
                f"`{owner}` reports that step on its own",
                actual=answer.describe(),
            )

    async def debit(
        self, amount: Decimal | None = None, label: str | None = None, *, judged: bool = False, **extra: Any
    ) -> Request:
        """A debit that must be applied. Unless it is what the case judges (``judged``, or the debit case
        itself), a refusal makes the case inconclusive instead of failing it a second time."""
        w = self.wallet
        amount = self.amount if amount is None else amount
        request = w.debit(amount, self.new_id("d"), self.new_id("r"), **extra)
        label = label or w.debit_word
        if not judged and self.case.id != w.DEBIT_CASE:
            answer = await self.send(request, label)
            self.prerequisite(answer, f"the {w.debit_word} this case needs first", w.DEBIT_CASE)
            self.model.debit(amount)
            self.reconcile(answer.balance, f"the answer to {label}")
            return request
        await self.applied(request, label, debit=amount)
        return request

    def debit_request(self, amount: Decimal | None = None, **extra: Any) -> Request:
        return self.wallet.debit(self.amount if amount is None else amount, self.new_id("d"), self.new_id("r"), **extra)

    async def send_undo(self, debit: Request, label: str, **extra: Any) -> tuple[Request, Answer]:
        """Send an undo of ``debit`` (unjudged) and return it with its answer.

        AMBSlot: when a cancel carrying its own transactionId is refused, certify tries once with the bet's
        transactionId; if that works, the wallet keys cancels on the bet's id: a note, and the rest of the run
        uses that convention (``--cancel-id bet`` says so up front)."""
        w = self.wallet
        request = w.undo(debit, self.new_id("u"), **extra)
        answer = await self.send(request, label)
        if not answer.ok and isinstance(w, AmbslotWallet) and w.cancel_id == "own" and not self.run.cancel_probed:
            self.run.cancel_probed = True
            w.cancel_id = "bet"
            again_request = w.undo(debit, self.new_id("u"), **extra)
            again = await self.send(again_request, f"{label}, carrying the bet's transactionId")
            if again.ok:
                self.notice(
                    f"a {w.undo_word} carrying its own transactionId was refused ({answer.describe()}) but one "
                    "carrying the bet's transactionId was accepted: this wallet keys cancels on the bet's id "
                    "(seed 003 calls transactionId the transaction's own unique reference); certify uses the "
                    "bet's id for the rest of the run (say --cancel-id bet to start with it)"
                )
                return again_request, again
            w.cancel_id = "own"
        return request, answer

    async def undo(self, debit: Request, label: str, *, tidy: bool = False) -> Answer:
        """Undo an applied ``debit``: it must succeed and refund the stored stake. A refusal fails only the
        undo case itself; elsewhere (a prerequisite, or ``tidy`` for a clean-up step) it is inconclusive."""
        w = self.wallet
        request, answer = await self.send_undo(debit, label)
        if not answer.ok:
            if tidy:
                raise Inconclusive(
                    f"the {w.undo_word} tidying up after the case {answer.refused} ({answer.describe()}); the case "
                    f"found no defect before that, and `{w.UNDO_CASE}` reports the {w.undo_word} itself",
                    actual=answer.describe(),
                )
            if self.case.id != w.UNDO_CASE:
                self.prerequisite(answer, f"the {w.undo_word} this case needs", w.UNDO_CASE)
            raise Fail(
                f"the {w.undo_word} of an applied {w.debit_word} {answer.refused}",
                expected="success",
                actual=answer.describe(),
            )
        self.last_undo = request
        self.model.credit(debit.amount)
        self.reconcile(answer.balance, f"the answer to {label}", f"the {w.undo_word} must refund the stored stake")
        return answer

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
