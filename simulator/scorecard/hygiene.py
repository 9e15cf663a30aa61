"""Protocol hygiene and conformance, from ordinary traffic: each check a small named function that reads the
journal and returns its findings (one per pattern, listing every request that shows it).

The facts that the wire answer does not keep come from what the dialects noted while decoding
(``op.params``): the XPro nonce, the clock skew of ``x-timestamp``, a fingerprint of the bearer token (a
SHA-256 prefix, never the token), and the fields lenient conformance let through.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.config import Settings
from simulator.dialects import registry
from simulator.dialects.fields import LENIENT
from simulator.journal import Entry
from simulator.money import decimals
from simulator.scorecard import model as m


def _auth_failed(dialect: str) -> object:
    return registry.get(dialect).neutral["auth_failed"]


REQUIRED = re.compile(r"^(\w+) is required$")
UNKNOWN = re.compile(r"^unknown field '([^']*)' \(did you mean '(\w+)'\?\)$")  # a typo of a required field
TOKEN_CALLS_MIN = 3  # fewer calls say nothing about a client's token habits
SHOWN = 3  # example details quoted in a finding
COVERED = ("already used", "from the simulator's clock")  # refusals the nonce and clock checks report


@dataclass(frozen=True)
class Context:
    settings: Settings


Check = Callable[[list[Entry], Context], list[m.Finding]]


def _seqs(entries: Iterable[Entry]) -> list[int]:
    return [e.seq for e in entries]


def _who(entries: list[Entry]) -> str | None:
    """The one player these entries are about, or None when several (or none) are."""
    players = {e.player for e in entries}
    return players.pop() if len(players) == 1 else None


def _found(
    check: str, severity: str, hits: list[Entry], message: str, *, kind: str = "hygiene", **more: Any
) -> m.Finding:
    """A finding about the requests ``hits`` (one dialect and tenant), named after its first request."""
    first = hits[0]
    return m.Finding(
        id=f"{re.sub(r'[^A-Za-z0-9_]+', '-', check)}-{first.seq}",
        kind=kind,
        check=check,
        severity=severity,
        dialect=first.dialect,
        tenant=first.op.agent if first.op else None,
        player=_who(hits),
        message=message,
        requests=_seqs(hits),
        **more,
    )


def reused_nonces(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """An XPro nonce sent more than once by the same agent: a replay to the provider, refused with 83
    inside its window and a latent bug outside it."""
    seen: dict[tuple[str | None, str], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.op is not None and "nonce" in e.op.params:  # a dialect with nonces (XPro) sets it
            seen[(e.op.agent, e.op.params["nonce"])].append(e)
    return [
        _found(
            "reused_nonce",
            m.FAIL,
            uses,
            f"x-nonce {nonce} was sent {len(uses)} times ({sum(1 for e in uses if e.code == _auth_failed(e.dialect))} "
            "refused as a replay): every request needs a fresh random nonce",
        )
        for (_, nonce), uses in seen.items()
        if len(uses) > 1
    ]


def clock_skew(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """XPro ``x-timestamp`` values at or past ``skew_warning`` of the allowed skew: a client whose clock
    drifts is about to be refused (or already is)."""
    allowed = ctx.settings.xpro.timestamp_skew
    threshold = allowed * ctx.settings.scorecard.skew_warning
    off: dict[str | None, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.op is not None and abs(e.op.params.get("clock_skew", 0)) >= threshold:  # XPro's decoder sets it
            off[e.op.agent].append(e)
    findings = []
    for skewed in off.values():
        skews = [e.op.params["clock_skew"] for e in skewed if e.op is not None]
        worst = max(skews, key=abs)
        refused = sum(1 for skew in skews if abs(skew) > allowed)
        side = "ahead of" if worst > 0 else "behind"
        message = (
            f"{len(skewed)} request(s) had x-timestamp {threshold:g} s or more off the simulator's clock "
            f"(worst {abs(worst):.0f} s {side}; {refused} refused beyond {allowed} s): sync the clock"
        )
        severity = m.FAIL if refused else m.WARN
        findings.append(_found("clock_skew", severity, skewed, message, extra={"worst_skew_s": round(worst, 3)}))
    return findings


def token_per_call(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """XPro clients that fetch a token far more often than ``expiresIn`` asks for (tokens issued within
    the same second are identical, so ``/v2/auth`` calls count as well as distinct tokens)."""
    calls: dict[str | None, list[Entry]] = defaultdict(list)
    auths: dict[str | None, int] = defaultdict(int)
    for e in entries:
        if e.op is not None:  # auth calls and token fingerprints: a dialect with tokens (XPro)
            if e.operation == "auth" and e.code == 0:
                auths[e.op.agent] += 1
            elif e.op.params.get("token_fingerprint"):
                calls[e.op.agent].append(e)
    findings = []
    for agent, used in calls.items():
        tokens = {e.op.params["token_fingerprint"] for e in used if e.op is not None}
        if len(used) >= TOKEN_CALLS_MIN and 2 * max(len(tokens), auths[agent]) >= len(used):
            message = (
                f"{len(used)} calls and {auths[agent]} /v2/auth calls ({len(tokens)} different tokens): "
                "fetch a token once and reuse it until expiresIn runs out"
            )
            findings.append(_found("token_per_call", m.WARN, used, message))
    return findings


def signature_failures(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """Requests refused for their signature, token or headers (a replayed nonce or a stale timestamp have
    their own checks), with the simulator's own explanation: what it expected, e.g. the canonical string."""
    refused: dict[tuple[str, str | None, str], list[Entry]] = defaultdict(list)
    for e in entries:
        detail = (e.detail or "").lower()
        if e.code != _auth_failed(e.dialect) or any(covered in detail for covered in COVERED):
            continue
        kind = "token" if "token" in detail else "signature" if "signature" in detail else "authentication"
        refused[(e.dialect, e.op.agent if e.op else None, kind)].append(e)
    findings = []
    for (_, _, kind), failed in refused.items():
        details = list(dict.fromkeys(e.detail for e in failed if e.detail))[-SHOWN:]
        message = f"{len(failed)} request(s) refused ({kind}): {details[-1] if details else 'no detail'}"
        findings.append(_found(f"{kind}_failure", m.WARN, failed, message, extra={"details": details}))
    return findings


def cross_operation_ids(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """One transaction id used by different operations (a rollback carrying its withdraw's id, an XPro
    transId used for a deposit and a withdrawal). AMBSlot processes a payout or cancel carrying the bet's id
    as its own operation, so there it is only noted."""
    ops: dict[tuple[str, str | None, str], list[Entry]] = defaultdict(list)
    for e in entries:
        op = e.op
        if op is not None and op.transaction is not None and op.operation != "check":
            ops[(e.dialect, op.agent, op.transaction)].append(e)
    findings = []
    for (dialect, _, txn), used in ops.items():
        names = list(dict.fromkeys(str(e.operation) for e in used))
        if len(names) > 1:
            message = f"transaction id {txn!r} was used for {', '.join(names)}: give every operation its own id"
            severity = m.INFO if registry.get(dialect).ids_shared_across_operations else m.WARN
            findings.append(_found("id_reused_across_operations", severity, used, message, transaction=txn))
    return findings


def excess_decimals(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """Amounts with more decimal places than the dialect takes (refused as a bad request)."""
    places = {d.name: d.max_decimals(ctx.settings) for d in registry.descriptions()}
    found: dict[tuple[str, str | None, str], list[Entry]] = defaultdict(list)
    example: dict[tuple[str, str | None, str], Decimal] = {}
    for e in entries:
        request = e.op.request if e.op is not None else None
        if not isinstance(request, dict):
            continue
        for key in registry.get(e.dialect).amount_fields:
            value = request.get(key)
            if isinstance(value, Decimal) and value.is_finite() and decimals(value) > places[e.dialect]:
                group = (e.dialect, e.op.agent if e.op else None, key)
                found[group].append(e)
                example.setdefault(group, value)
    return [
        _found(
            "too_many_decimals",
            m.WARN,
            hits,
            f"{len(hits)} request(s) sent {group[2]} with more than {places[group[0]]} decimal places "
            f"(e.g. {example[group]}): round to the currency's unit before sending",
        )
        for group, hits in found.items()
    ]


def missing_fields(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """Requests refused because a field the document marks required was missing (strict conformance), or
    was sent under a misspelt name (``transid`` for ``transId``): every dialect, from the refusal's detail."""
    refused: dict[tuple[str, str, str | None, str | None, str], list[Entry]] = defaultdict(list)
    for e in entries:
        agent = e.op.agent if e.op else None
        if match := REQUIRED.match(e.detail or ""):
            refused[("missing_required_field", e.dialect, agent, e.operation, f"{match.group(1)} is required")].append(
                e
            )
        elif match := UNKNOWN.match(e.detail or ""):
            refused[("unknown_field", e.dialect, agent, e.operation, match.group(0))].append(e)
    return [
        _found(check, m.WARN, hits, f"{len(hits)} {operation} request(s) refused: {why}", operation=operation)
        for (check, _, _, operation, why), hits in refused.items()
    ]


def lenient_acceptances(entries: list[Entry], ctx: Context) -> list[m.Finding]:
    """What lenient conformance let through: a strict counterpart (the real provider may be one) refuses it."""
    noted: dict[tuple[str, str | None, str | None, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.op is not None:
            for field, problem in e.op.params.get(LENIENT, ()):
                noted[(e.dialect, e.op.agent, e.operation, field, problem)].append(e)
    findings = []
    for (_, _, operation, field, problem), hits in noted.items():
        both = "both modes" in problem
        tail = "accepted by both modes" if both else "accepted in lenient mode; a strict counterpart refuses it"
        message = f"{len(hits)} {operation} request(s): {field} {problem}; {tail}"
        severity = m.INFO if both else m.WARN
        findings.append(_found(f"{field} {problem}", severity, hits, message, kind="conformance", operation=operation))
    return findings


CHECKS: tuple[Check, ...] = (
    reused_nonces,
    clock_skew,
    token_per_call,
    signature_failures,
    cross_operation_ids,
    excess_decimals,
    missing_fields,
    lenient_acceptances,
)


def run(entries: list[Entry], settings: Settings) -> list[m.Finding]:
    ctx = Context(settings)
    findings: list[m.Finding] = []
    for check in CHECKS:
        findings.extend(check(entries, ctx))
    return findings
