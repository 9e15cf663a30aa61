"""The one HTTP-free pipeline every dialect goes through: claim -> scenario engine -> ledger -> journal.

:class:`Simulator` owns the state of a running simulator (settings, ledger, scenario engine, journal) and
is what the dialects, the admin API and the tests talk to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from simulator.config import Settings
from simulator.errors import DomainError, DuplicateTransaction
from simulator.journal import Entry, Journal
from simulator.ledger import Ledger
from simulator.operations import RULE_APPLIED, Operation, Outcome
from simulator.scenarios.engine import Decision, Engine
from simulator.scenarios.model import Scenario
from simulator.scenarios.seeding import seed_players

if TYPE_CHECKING:  # the control API's types, for the one hook it calls; nothing here speaks HTTP
    from aiohttp import web

log = logging.getLogger("simulator.access")

Perform = Callable[[Operation], dict[str, Any]]


class _AsyncClaim:
    """The ledger's in-flight claim (a plain context manager) used with ``async with``."""

    __slots__ = ("claim",)

    def __init__(self, claim: contextlib.AbstractContextManager[object]) -> None:
        self.claim = claim

    async def __aenter__(self) -> None:
        self.claim.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.claim.__exit__(kind, exc, tb)


class Simulator:
    def __init__(
        self,
        settings: Settings,
        scenario: Scenario | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep  # injected latency goes through here (tests shorten it)
        server = settings.server
        self.ledger = Ledger(clock, server.max_tombstones, server.max_transactions, server.max_players)
        self.journal = Journal(settings.server.journal_size, settings.server.journal_bytes)
        self.engine = Engine(scenario or Scenario.empty())
        self.started = clock()
        seed_players(self)

    @property
    def scenario(self) -> Scenario:
        return self.engine.scenario

    def reset(self) -> None:
        """Back to the start: players from config and scenario, no transactions, empty journal, counters 0."""
        self.ledger.reset()
        self.journal.clear()
        self.engine.reset()
        seed_players(self)

    def replace_scenario(self, scenario: Scenario) -> None:
        """Load a new scenario: its rules replace the old ones and the ledger restarts from its players."""
        self.engine = Engine(scenario)
        self.reset()

    # The shared store (simulator.shared) overrides these four; in memory they cost one await.

    async def open(self) -> None:
        """Connect to the store (nothing to do in memory)."""

    async def close(self) -> None:
        """Disconnect from the store."""

    def claim(self, op: Operation) -> contextlib.AbstractAsyncContextManager[object]:
        if op.mutating and op.transaction is not None:
            return _AsyncClaim(self.ledger.claim(op.dialect, op.agent or "", op.transaction, op.scope))
        return contextlib.nullcontext()

    async def decide(self, op: Operation) -> Decision | None:
        return self.engine.decide(op)

    async def perform(self, op: Operation, perform: Perform) -> dict[str, Any]:
        return perform(op)

    async def control(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A control call past its guard (a shared store first syncs, and logs what changes state)."""
        return await handler(request)

    def attach(self, performers: dict[str, Perform], admin: Any) -> None:
        """Told by the app factory which ``perform`` each dialect has, and the control sub-app."""

    async def store_health(self) -> dict[str, Any]:
        return {"kind": "memory", "ok": True}

    async def run(self, op: Operation, perform: Perform) -> Outcome:
        """Decide and carry out one decoded request. Domain errors come back in the outcome."""
        rule: str | None = None
        delay = 0.0
        try:
            async with self.claim(op):
                decision = await self.decide(op)
                if decision is None:
                    return Outcome(data=await self.perform(op, perform))
                rule, delay = decision.rule, decision.delay
                if delay:
                    await self.sleep(delay)
                if not decision.intervenes:
                    return Outcome(data=await self.perform(op, perform), rule=rule, delay=delay)
                data = None
                if decision.apply:
                    known = op.transaction is not None and self.ledger.find(
                        op.dialect, op.agent or "", op.transaction, op.scope
                    )
                    with contextlib.suppress(DomainError):  # "applied" means: as far as the ledger allows
                        data = await self.perform(op, perform)
                        if not known:  # a new transfer, not a replay: the scorecard judges the answer hiding it
                            op.params[RULE_APPLIED] = True
                if decision.fault:
                    return Outcome(data=data, fault=decision.fault, rule=rule, delay=delay)
                if decision.duplicate:
                    return Outcome(error=DuplicateTransaction("injected duplicate"), rule=rule, delay=delay)
                assert decision.respond is not None
                return Outcome(error=decision.respond, rule=rule, delay=delay)
        except DomainError as err:
            return Outcome(error=err, rule=rule, delay=delay)

    def record(self, entry: Entry) -> None:
        self.journal.append(entry)
        if self.settings.server.log_requests:
            self.log_line(entry)

    def log_line(self, entry: Entry) -> None:
        fields = {
            "dialect": entry.dialect,
            "operation": entry.operation,
            "player": entry.player,
            "transaction": entry.transaction,
            "rule": entry.rule,
            "status": entry.status,
            "code": entry.code,
            "ms": round(entry.ms, 2),
        }
        text = " ".join(f"{k}={'-' if v is None else v}" for k, v in fields.items())
        log.info(
            "%s %s%s",
            entry.endpoint,
            text,
            f" detail={entry.detail!r}" if entry.detail else "",
            extra={"fields": {"endpoint": entry.endpoint, **fields, "detail": entry.detail}},
        )
