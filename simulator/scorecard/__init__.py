"""The scorecard: judges the integrator's client from the journal (see the README's "Scorecard").

A pure module: it reads journal entries and the ledger's read API, and never touches HTTP or the
ledger's internals. The report is computed when asked, so the request path pays nothing for it; it covers
what the journal still holds (a ring buffer of ``server.journal_size`` requests): once older requests
have aged out, their faults are no longer judged, and the report says so.

::

    report = build(list(sim.journal), sim.ledger, sim.settings, now=sim.clock(), journal_size=...)
    report["ok"], report["summary"], report["findings"]
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulator.config import Settings
from simulator.dialects import registry
from simulator.journal import Entry
from simulator.ledger.store import Books
from simulator.scorecard import faults, hygiene
from simulator.scorecard import model as m

__all__ = ["Books", "build"]

ORDER = {m.FAIL: 0, m.WARN: 1, m.INFO: 2}


def build(entries: list[Entry], books: Books, settings: Settings, *, now: float, journal_size: int) -> dict[str, Any]:
    """The report as plain data (the ``GET /_sim/report`` JSON): ``entries`` oldest first."""
    rules = faults.Rules(window=settings.scorecard.window, client_timeout=settings.scorecard.client_timeout)
    findings = faults.judge(entries, books, rules, now) + hygiene.run(entries, settings)
    findings.sort(key=lambda f: (ORDER[f.severity], f.requests[0] if f.requests else 0))
    summary = m.summary(findings)
    players, unattributed = m.by_player(findings)
    return {
        "ok": summary["failed"] == 0,
        "generated": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds"),
        "summary": summary,
        "findings": [f.to_dict() for f in findings],
        "players": players,
        "unattributed": unattributed,
        "journal": _coverage(entries, journal_size),
        "settings": {
            "window": settings.scorecard.window,
            "client_timeout": settings.scorecard.client_timeout,
            "skew_warning": settings.scorecard.skew_warning,
            "conformance": {name: getattr(settings, name).conformance for name in registry.NAMES},
        },
    }


def _coverage(entries: list[Entry], size: int) -> dict[str, Any]:
    """Which requests the report covers; a full journal has forgotten its oldest requests."""
    coverage: dict[str, Any] = {
        "size": size,
        "held": len(entries),
        "first": entries[0].seq if entries else None,
        "last": entries[-1].seq if entries else None,
        "full": len(entries) >= size,
    }
    if coverage["full"]:
        coverage["note"] = (
            f"the journal is full: requests before #{coverage['first']} have aged out and are not judged "
            "(raise server.journal_size to judge a longer run)"
        )
    return coverage
