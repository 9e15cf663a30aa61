"""The one HTTP-free pipeline every dialect goes through: claim -> scenario engine -> ledger -> journal.

:class:`Simulator` owns the state of a running simulator (settings, ledger, scenario engine, journal) and
is what the dialects, the control API and the tests talk to. It is *given* a store
(:class:`simulator.store.Store`; the embedded one by default) and calls its hooks; it never is one.

The control API's state changes are the domain commands below (:meth:`Simulator.reset`,
:meth:`~Simulator.replace_scenario`, :meth:`~Simulator.put_player`, :meth:`~Simulator.add_rule`,
:meth:`~Simulator.replace_rule`, :meth:`~Simulator.remove_rule`, :meth:`~Simulator.clear_journal`): each
builds a :class:`~simulator.store.Command` and hands it to the store, which carries it out with
:meth:`Simulator.execute` (a shared store runs a player command on its working set, and logs a configuration
one for every replica to apply: the same command, never an HTTP request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.config import Settings
from simulator.errors import DomainError, DuplicateTransaction, SimulatorError
from simulator.journal import Entry, Journal
from simulator.ledger import Ledger, Player
from simulator.operations import RULE_APPLIED, Operation, Outcome
from simulator.scenarios import loader
from simulator.scenarios.engine import Engine
from simulator.scenarios.model import Rule, Scenario
from simulator.scenarios.seeding import seed_players
from simulator.store import Command, Rerun, Store, StoreUnavailable, connect, scenario_files
from simulator.store import base as store_base
from simulator.store.memory import LocalStore

log = logging.getLogger("simulator.access")

Perform = store_base.Perform  # a dialect's money rules for one request (the store names it too)

#: the player flags a control call may set
FLAGS = ("locked", "blocked", "disabled", "session_expired", "reality_check")
RERUNS = 5  # times a request is decided again because the shared configuration changed under it


class PlayerConflict(SimulatorError):
    """A player change that contradicts the state: a session another player holds, or a new currency for
    a player with transactions. Nothing was changed."""


@dataclass(frozen=True)
class PlayerChange:
    """What ``PUT /_sim/players/...`` asks for; ``None`` leaves a field as it is (``bet_limit_given``
    tells a lifted limit from an untouched one)."""

    balance: Decimal | None = None
    currency: str | None = None
    bet_limit: Decimal | None = None
    bet_limit_given: bool = False
    flags: tuple[tuple[str, bool], ...] = ()
    sessions: tuple[str, ...] = ()

    def to_args(self) -> dict[str, Any]:
        return {
            "balance": self.balance,
            "currency": self.currency,
            "bet_limit": self.bet_limit,
            "bet_limit_given": self.bet_limit_given,
            "flags": [list(f) for f in self.flags],
            "sessions": list(self.sessions),
        }

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> PlayerChange:
        return cls(
            balance=args["balance"],
            currency=args["currency"],
            bet_limit=args["bet_limit"],
            bet_limit_given=args["bet_limit_given"],
            flags=tuple((str(k), bool(v)) for k, v in args["flags"]),
            sessions=tuple(args["sessions"]),
        )


class Simulator:
    def __init__(
        self,
        settings: Settings,
        scenario: Scenario | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else LocalStore()
        self.clock = clock
        self.sleep = sleep  # injected latency goes through here (tests shorten it)
        server = settings.server
        self.ledger = Ledger(
            self.clock,
            server.max_tombstones,
            server.max_transactions,
            server.max_players,
            max_age=server.transaction_retention,
            id_retention=server.id_retention,
            max_remembered=server.max_remembered_ids,
        )
        self.journal = Journal(settings.server.journal_size, settings.server.journal_bytes)
        self.engine = Engine(scenario or Scenario.empty())
        self.started = clock()
        self.store.bind(self)
        seed_players(self.ledger, self.settings, self.scenario)

    @property
    def scenario(self) -> Scenario:
        return self.engine.scenario

    # wiring (the app factory and the server call these)

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def store_health(self) -> dict[str, Any]:
        return await self.store.health()

    async def refresh(self) -> None:
        """Bring what the control API reads up to date (a shared store reads what other replicas did)."""
        await self.store.refresh()

    async def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        """Whether a request with this transaction id is being processed right now (its claim is held),
        on whichever replica: asked of the store, since a shared one holds the claims."""
        return await self.store.in_flight(dialect, tenant, txn_id, scope)

    # domain commands

    async def reset(self) -> None:
        """Back to the start: players from config and scenario, no transactions, empty journal, counters 0."""
        await self.store.command(Command("reset", {}))

    async def replace_scenario(self, scenario: Scenario) -> None:
        """Load a new scenario: its rules replace the old ones and the ledger restarts from its players."""
        await self.store.command(Command("scenario", {"files": scenario_files(scenario)}, scenario))

    async def put_player(self, dialect: str, tenant: str, player_id: str, change: PlayerChange) -> tuple[Player, bool]:
        """Create or change a player; (the player, whether it was created). PlayerConflict changes nothing."""
        args = {"dialect": dialect, "tenant": tenant, "player": player_id, "change": change.to_args()}
        found: tuple[Player, bool] = await self.store.command(Command("player", args, change))
        return found

    async def adjust_player(self, dialect: str, tenant: str, player_id: str, delta: Decimal) -> Player:
        """Move a player's balance by ``delta`` (an ``adjust`` transaction, so the books still add up)."""
        args = {"dialect": dialect, "tenant": tenant, "player": player_id, "delta": delta}
        player: Player = await self.store.command(Command("adjust", args))
        return player

    async def add_rule(self, text: str, where: str, position: int | None = None, rule: Rule | None = None) -> int:
        """Insert a rule given as JSON/YAML text (parsed already as ``rule`` by the caller, if it was)."""
        args = {"text": text, "where": where, "position": position}
        at: int = await self.store.command(Command("rule_add", args, rule))
        return at

    async def replace_rule(self, name: str, text: str, where: str, rule: Rule | None = None) -> int:
        args = {"name": name, "text": text, "where": where}
        at: int = await self.store.command(Command("rule_replace", args, rule))
        return at

    async def remove_rule(self, name: str) -> Rule:
        removed: Rule = await self.store.command(Command("rule_remove", {"name": name}))
        return removed

    async def clear_journal(self) -> None:
        await self.store.command(Command("journal_clear", {}))

    def execute(self, command: Command) -> Any:
        """Carry out a domain command on this process's state (the store decides when, and replicas replay
        the same command); a refusal (PlayerConflict, RuleConflict, LedgerFull) changes nothing."""
        args = command.args
        if command.name == "reset":
            return self._reset()
        if command.name == "scenario":
            scenario = command.local
            if scenario is None:
                parsed = [loader.parse(text, src, self.settings, i) for i, (src, text) in enumerate(args["files"])]
                scenario = loader.combine(parsed)
            self.engine = Engine(scenario)
            return self._reset()
        if command.name == "player":
            change = command.local or PlayerChange.from_args(args["change"])
            return self._put_player(args["dialect"], args["tenant"], args["player"], change)
        if command.name == "adjust":
            return self._adjust(args["dialect"], args["tenant"], args["player"], args["delta"])
        if command.name == "rule_add":
            rule = command.local or self._rule(args["text"], args["where"])
            return self.engine.add(rule, args["position"])
        if command.name == "rule_replace":
            rule = command.local or self._rule(args["text"], args["where"], args["name"])
            return self.engine.replace(args["name"], rule)
        if command.name == "rule_remove":
            return self.engine.remove(args["name"])
        if command.name == "journal_clear":
            self.journal.clear()
            return None
        raise ValueError(f"no domain command {command.name!r}")

    def _reset(self) -> None:
        self.ledger.reset()
        self.journal.clear()
        self.engine.reset()
        seed_players(self.ledger, self.settings, self.scenario)

    def _rule(self, text: str, where: str, name: str | None = None) -> Rule:
        return loader.parse_rule(text, where, self.settings, self.scenario.seed, name)

    def _put_player(self, dialect: str, tenant: str, pid: str, change: PlayerChange) -> tuple[Player, bool]:
        ledger = self.ledger
        with ledger.atomic():
            player = ledger.player(dialect, tenant, pid)
            created = player is None
            if player is None:
                _, tenant_currency, default = self.settings.new_player(dialect, tenant)
                start = default if change.balance is None else change.balance
                player = ledger.open(dialect, tenant, pid, change.currency or tenant_currency, start)
            elif change.currency is not None and change.currency != player.currency and player.rows:
                raise PlayerConflict("the currency of a player with transactions cannot change")
            for session in change.sessions:  # refusals first: a refused call must leave no change behind
                owner = ledger.bind_session(player, session)
                if owner != player.id:
                    raise PlayerConflict(f"session {session!r} belongs to player {owner!r}")
            if not created:
                player.currency = change.currency or player.currency
                if change.balance is not None:
                    ledger.set_balance(player, change.balance)
            for flag, value in change.flags:
                setattr(player, flag, value)
            if change.bet_limit_given:
                player.bet_limit = change.bet_limit
        return player, created

    def _adjust(self, dialect: str, tenant: str, pid: str, delta: Decimal) -> Player:
        ledger = self.ledger
        with ledger.atomic():
            player = ledger.player(dialect, tenant, pid)
            if player is None:
                raise PlayerConflict(f"no player {pid!r}")
            if player.balance + delta < 0:
                raise PlayerConflict(f"an adjustment of {delta} would make the balance negative")
            ledger.set_balance(player, player.balance + delta)
        return player

    # the request pipeline

    async def run(self, op: Operation, perform: Perform) -> Outcome:
        """Decide and carry out one decoded request. Domain errors come back in the outcome."""
        for _ in range(RERUNS):
            try:
                return await self._run(op, perform)
            except Rerun:  # the configuration changed under the request (a shared store): decide it again
                continue
        return Outcome(error=StoreUnavailable(f"the configuration changed under the request {RERUNS} times"))

    async def _run(self, op: Operation, perform: Perform) -> Outcome:
        store = self.store
        refused = await store.admit(op)
        if refused is not None:
            return Outcome(error=refused)
        rule: str | None = None
        delay = 0.0
        try:
            async with store.claim(op):
                decision = await store.decide(op)
                if decision is None:
                    return Outcome(data=await store.perform(op, perform))
                rule, delay = decision.rule, decision.delay
                if delay:
                    await self.sleep(delay)
                if not decision.intervenes:
                    return Outcome(data=await store.perform(op, perform), rule=rule, delay=delay)
                data = None
                if decision.apply:
                    known = op.transaction is not None and self.ledger.find(
                        op.dialect, op.agent or "", op.transaction, op.scope
                    )
                    with contextlib.suppress(DomainError):  # "applied" means: as far as the ledger allows
                        data = await store.perform(op, perform)
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
        self.store.record(entry)
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


async def open_simulator(
    settings: Settings,
    scenario: Scenario | None = None,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Simulator:
    """A simulator on the store ``settings.store`` names, connected (raises StoreError if it cannot be).
    Call ``await sim.open()`` once the app is built (a shared store then loads its state)."""
    store, settings = await connect(settings)
    options: dict[str, Any] = {"store": store}
    if clock is not None:
        options["clock"] = clock
    if sleep is not None:
        options["sleep"] = sleep
    return Simulator(settings, scenario, **options)
