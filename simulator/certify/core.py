"""The vocabulary of a certification run: cases, verdicts, exchanges, results and the balance model.

A case is data (id, what it sends, what passes, why it matters, a one-line hint) plus one small async
function. The function raises :class:`Fail` (the document is violated or money is wrong), records a
warning with ``ctx.warn`` (a concrete risk the document does not rule out) or a note with ``ctx.notice``
(the document is silent and the wallet chose differently from the simulator: shown, never counted), or
raises :class:`Skip` (the target lacks what the case needs) or :class:`Inconclusive` (the case could not be
set up or finished: a prerequisite or tidy-up step was refused, the time budget ran out); returning
normally is a pass.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simulator import jsonio

PASS, FAIL, WARN, NOTE, SKIP, INCONCLUSIVE = "pass", "fail", "warn", "note", "skip", "inconclusive"
STATUSES = (PASS, FAIL, WARN, NOTE, SKIP, INCONCLUSIVE)
#: verdicts whose message, hint and exchanges are shown in full (a pass or a skip is one line)
EXPLAINED = (FAIL, WARN, NOTE, INCONCLUSIVE)


def shown(value: Any, limit: int = 160) -> str:
    """``value`` as the wallet's JSON text (``404``, ``"ERROR_X"``, ``{"a": 1.50}``), never a Python repr."""
    if isinstance(value, Decimal):
        return str(value)
    try:
        text = jsonio.dumps(jsonio.printable(value))
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Verdict(Exception):
    """Ends a case with a status other than pass; ``expected``/``actual`` show what differed."""

    status = FAIL

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.actual = actual


class Fail(Verdict):
    status = FAIL


class Skip(Verdict):
    status = SKIP


class Inconclusive(Verdict):
    """The case could not be set up or finished; the message names the reason (and the case that reports
    the underlying defect, so one defect is never reported as several failures)."""

    status = INCONCLUSIVE


class Unreachable(Exception):
    """The run cannot happen (wallet unreachable, preflight refused): exit 2 with this one line, and the
    exchange that shows why (the reports carry it in a failing ``setup`` testcase)."""

    def __init__(self, message: str, exchange: Exchange | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange
        self.details = details or {}


@dataclass
class Exchange:
    """One request and its answer as shown in reports; secrets are redacted before it is built."""

    label: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    ms: float = 0.0
    note: str = ""  # "abandoned: ...", "no answer: ..."
    signed: dict[str, str] = field(default_factory=dict)  # Fizzy: the string signed, the body MD5, the signature

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body,
            },
            "response": None
            if self.status is None
            else {"status": self.status, "headers": self.response_headers, "body": self.response_body},
            "ms": round(self.ms, 2),
            "note": self.note,
            **({"signed": self.signed} if self.signed else {}),
        }

    def text(self) -> str:
        lines = [f"--> {self.method} {self.url}  ({self.label})"]
        lines += [f"    {k}: {v}" for k, v in self.request_headers.items()]
        lines.append(f"    {self.request_body}")
        if self.status is None:
            lines.append(f"<-- {self.note or 'no answer'}")
        else:
            lines.append(f"<-- HTTP {self.status} in {self.ms:.1f} ms" + (f" ({self.note})" if self.note else ""))
            lines.append(f"    {self.response_body}")
        if self.signed:
            lines.append("certify signed this string (METHOD, URL, MD5 of the body; one per line):")
            lines += [f"    {line}" for line in self.signed["string_signed"].split("\n")]
            lines.append(f"body MD5:       {self.signed['body_md5']}")
            lines.append(f"signature sent: {self.signed['signature_sent']}")
        return "\n".join(lines)


@dataclass
class Answer:
    """A wallet's answer as the dialect reads it: success or the error code, and the balance it gave."""

    http: int
    body: Any
    ok: bool
    code: Any  # Fizzy: the error code string; AMBSlot: status.code; None when absent
    balance: Decimal | None  # the answered balance (a JSON number, or a numeric string), None if absent
    exchange: Exchange
    unreadable: str = ""  # a success whose balance certify could not find: what it got and where it looked

    @property
    def refused(self) -> str:
        """How to say it did not succeed: a success certify could not read is never called a refusal."""
        return "answered a success certify could not read" if self.unreadable else "was refused"

    def describe(self) -> str:
        if self.ok:
            return f"success, balance {self.balance}"
        if self.unreadable:
            return self.unreadable
        if self.code is not None:
            return f"HTTP {self.http} code {shown(self.code)}"
        return f"HTTP {self.http} {shown(self.body, 120)}"


@dataclass
class Result:
    id: str
    status: str
    ms: float
    message: str = ""
    expected: str | None = None
    actual: str | None = None
    hint: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # reconcile.* findings raised during the case
    details: dict[str, Any] = field(default_factory=dict)  # e.g. latency figures
    focus: int = -1  # the exchange the verdict is about (the last one when a failure ends the case)

    @property
    def culprit(self) -> Exchange | None:
        return self.exchanges[self.focus] if self.exchanges else None

    def as_dict(self, *, exchanges: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "status": self.status, "ms": round(self.ms, 2), "message": self.message}
        for key in ("expected", "actual"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.status in EXPLAINED:
            data["hint"] = self.hint
            if exchanges:
                data["exchanges"] = [x.as_dict() for x in self.exchanges]
                if self.exchanges:
                    data["focus"] = self.focus % len(self.exchanges)  # the exchange the verdict is about
        if self.findings:
            data["findings"] = self.findings
        if self.details:
            data["details"] = self.details
        return data


CaseFn = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    id: str
    sends: str
    passes: str  # what the document requires, or what money requires: anything else fails
    why: str
    hint: str
    run: CaseFn
    ours: str = ""  # what is only the simulator's choice: another choice is a note (or a warning when risky)


class Suite:
    """The ordered cases of one dialect, registered with :meth:`case`."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.cases: list[Case] = []

    def case(
        self, id: str, *, sends: str, passes: str, why: str, hint: str, ours: str = ""
    ) -> Callable[[CaseFn], CaseFn]:
        def register(fn: CaseFn) -> CaseFn:
            if any(c.id == id for c in self.cases):
                raise ValueError(f"case {id!r} is registered twice")
            self.cases.append(Case(id, sends, passes, why, hint, fn, ours))
            return fn

        return register

    def select(self, patterns: Iterable[str] | None) -> list[Case]:
        """Cases whose id matches any glob (``auth.*``, ``*repeat``); all of them when none is given."""
        wanted = [p for p in patterns or [] if p]
        if not wanted:
            return list(self.cases)
        return [c for c in self.cases if any(fnmatch.fnmatchcase(c.id, p) for p in wanted)]

    def table(self) -> str:
        """The case table in Markdown (docs/certify.md is checked against it)."""
        rows = [
            "| id | what it sends | required (by the document or by money): else **fail** "
            "| only our choice: another one is a **note** | why it matters |",
            "|---|---|---|---|---|",
        ]
        rows += [f"| `{c.id}` | {c.sends} | {c.passes} | {c.ours or '-'} | {c.why} |" for c in self.cases]
        return "\n".join(rows)


class Model:
    """The runner's own idea of the player's balance. Every balance the wallet answers is compared with it;
    a difference is a ``reconcile.<case>`` finding, after which the model adopts the wallet's figure so that
    one mistake is reported once, by the case that caused it, and later cases are judged on their own."""

    def __init__(self, balance: Decimal) -> None:
        self.balance = balance
        self.start = balance
        self.findings: list[str] = []

    def debit(self, amount: Decimal) -> None:
        self.balance -= amount

    def credit(self, amount: Decimal) -> None:
        self.balance += amount

    def compare(self, answered: Any, where: str, case_id: str) -> str | None:
        """None when ``answered`` is the model's balance, else the finding (recorded, and the model adopts it)."""
        if isinstance(answered, Decimal) and answered == self.balance:
            return None
        finding = f"reconcile.{case_id}: {where}: the wallet says {shown(answered)}, the model expects {self.balance}"
        self.findings.append(finding)
        if isinstance(answered, Decimal):
            self.balance = answered
        return finding
