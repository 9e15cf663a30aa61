"""Findings, the verdict table, and the report they add up to.

A finding is one thing the scorecard has to say about the client: the verdict on one injected fault
(``kind: fault``), a protocol-hygiene remark from ordinary traffic (``hygiene``), or a gap that lenient
conformance let through (``conformance``). Its severity decides the report: any ``fail`` makes it not ok.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator.dialects import registry

FAIL, WARN, INFO = "fail", "warn", "info"
SEVERITIES = (FAIL, WARN, INFO)

RECOVERED = "recovered"
DOUBLE_SPEND = "double_spend"
ABANDONED = "abandoned"
GAVE_UP_CLEANLY = "gave_up_cleanly"
UNSAFE_RESEND = "unsafe_resend"
VERDICTS = (RECOVERED, DOUBLE_SPEND, ABANDONED, GAVE_UP_CLEANLY, UNSAFE_RESEND)


#: operations after which the player is owed money: giving up on one that was not applied leaves a win,
#: a refund or a cancel unpaid, so ``gave_up_cleanly`` fails there (the seamless wallets; XPro has none)
def owed(dialect: str) -> frozenset[str]:
    return registry.get(dialect).owed


def verdict_severity(dialect: str, operation: str, verdict: str, *, hidden: bool = False) -> str:
    """Which outcomes pass, per dialect (docs/scorecard.md): recovering always passes; a double spend
    and an abandoned applied transaction always fail; giving up on a transaction that was not applied
    passes, except where the player is owed the money; a blind resend that happened to do no harm warns.
    ``hidden``: the answer was a definite refusal of a transfer the simulator applied; a client that
    believed it and never checked is only warned (a double spend still fails)."""
    if verdict == ABANDONED and hidden:
        return WARN
    if verdict in (DOUBLE_SPEND, ABANDONED):
        return FAIL
    if verdict == UNSAFE_RESEND:
        return WARN
    if verdict == GAVE_UP_CLEANLY and operation in owed(dialect):
        return FAIL
    return INFO


@dataclass
class Finding:
    id: str
    kind: str  # fault | hygiene | conformance
    severity: str  # fail | warn | info
    dialect: str
    message: str
    requests: list[int]
    verdict: str | None = None
    check: str | None = None  # the hygiene / conformance check that found it
    tenant: str | None = None
    player: str | None = None
    transaction: str | None = None
    operation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "verdict": self.verdict,
            "check": self.check,
            "severity": self.severity,
            "dialect": self.dialect,
            "tenant": self.tenant,
            "player": self.player,
            "transaction": self.transaction,
            "operation": self.operation,
            "message": self.message,
            "requests": self.requests,
            **self.extra,
        }


def summary(findings: list[Finding]) -> dict[str, Any]:
    faults = [f for f in findings if f.kind == "fault"]
    by_verdict = {v: 0 for v in VERDICTS}
    for f in faults:
        by_verdict[f.verdict or ""] = by_verdict.get(f.verdict or "", 0) + 1
    return {
        "judged": len(faults),
        "passed": sum(1 for f in faults if f.severity == INFO),
        "failed": sum(1 for f in findings if f.severity == FAIL),
        "warnings": sum(1 for f in findings if f.severity == WARN),
        "by_verdict": by_verdict,
        "by_kind": {k: sum(1 for f in findings if f.kind == k) for k in ("fault", "hygiene", "conformance")},
    }


def by_player(findings: Iterable[Finding]) -> tuple[dict[str, Any], list[str]]:
    """Finding ids grouped by player (key ``dialect/tenant/player``) and transaction; the ids of findings
    about no single player (a reused nonce, a bad signature before the body was read) come apart."""
    players: dict[str, Any] = {}
    loose: list[str] = []
    for f in findings:
        if f.player is None:
            loose.append(f.id)
            continue
        key = f"{f.dialect}/{f.tenant or '-'}/{f.player}"
        group = players.setdefault(
            key,
            {
                "dialect": f.dialect,
                "tenant": f.tenant,
                "player": f.player,
                "failed": 0,
                "warnings": 0,
                "findings": [],
                "transactions": {},
            },
        )
        group["failed"] += f.severity == FAIL
        group["warnings"] += f.severity == WARN
        if f.transaction is None:
            group["findings"].append(f.id)
        else:
            group["transactions"].setdefault(f.transaction, []).append(f.id)
    return players, loose
