"""The vocabulary of a certification run: cases, verdicts, exchanges, results and the balance model.

A case is data (id, what it sends, what passes, why it matters, a one-line hint) plus one small async
function. The function raises :class:`Fail` (the document is violated or money is wrong), or records a
warning with ``ctx.warn`` (the document is silent and the wallet chose differently from our decisions),
or :class:`Skip` (the target lacks what the case needs); returning normally is a pass.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
STATUSES = (PASS, FAIL, WARN, SKIP)


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


class Unreachable(Exception):
    """The run cannot happen (wallet unreachable, preflight refused): exit 2 with this one line."""


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
        }

    def text(self) -> str:
        lines = [f"--> {self.method} {self.url}  ({self.label})"]
        lines += [f"    {k}: {v}" for k, v in self.request_headers.items()]
        lines.append(f"    {self.request_body}")
        if self.status is None:
            lines.append(f"<-- {self.note or 'no answer'}")
        else:
            lines.append(f"<-- HTTP {self.status} in {self.ms:.1f} ms")
            lines.append(f"    {self.response_body}")
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

    def describe(self) -> str:
        if self.ok:
            return f"success, balance {self.balance}"
        if self.code is not None:
            return f"HTTP {self.http} code {self.code!r}"
        body = repr(self.body)
        return f"HTTP {self.http} {body if len(body) <= 120 else body[:120] + '...'}"


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
        if self.status in (FAIL, WARN):
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
    passes: str
    why: str
    hint: str
    run: CaseFn


class Suite:
    """The ordered cases of one dialect, registered with :meth:`case`."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.cases: list[Case] = []

    def case(self, id: str, *, sends: str, passes: str, why: str, hint: str) -> Callable[[CaseFn], CaseFn]:
        def register(fn: CaseFn) -> CaseFn:
            if any(c.id == id for c in self.cases):
                raise ValueError(f"case {id!r} is registered twice")
            self.cases.append(Case(id, sends, passes, why, hint, fn))
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
        rows = ["| id | what it sends | what passes | why it matters |", "|---|---|---|---|"]
        rows += [f"| `{c.id}` | {c.sends} | {c.passes} | {c.why} |" for c in self.cases]
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
        finding = f"reconcile.{case_id}: {where}: the wallet says {answered}, the model expects {self.balance}"
        self.findings.append(finding)
        if isinstance(answered, Decimal):
            self.balance = answered
        return finding
