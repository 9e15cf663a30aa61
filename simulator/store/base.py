"""The store's interface (:class:`Store`, :class:`Command`) and the store URL; :mod:`simulator.store.memory` and
:mod:`simulator.store.redis` implement it, :mod:`simulator.store` opens the one a setting names."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from simulator.config import Settings
from simulator.errors import DomainError, InternalError, SimulatorError
from simulator.ledger.store import Books

if TYPE_CHECKING:  # the types of the hooks
    from simulator.journal import Entry, Journal
    from simulator.ledger import Ledger, Player, Tombstone, Transaction
    from simulator.operations import Operation
    from simulator.scenarios.engine import Decision, Engine
    from simulator.scenarios.model import Scenario

#: a dialect's synchronous money rules for one decoded request (the dialect's ``perform``)
Perform = Callable[["Operation"], dict[str, Any]]


class Host(Protocol):
    """What a store needs of the simulator it is given to (:class:`simulator.service.Simulator`): the store
    is below the service, so it names this shape rather than importing the pipeline."""

    settings: Settings
    ledger: Ledger
    clock: Callable[[], float]
    engine: Engine
    journal: Journal

    @property
    def scenario(self) -> Scenario: ...

    def execute(self, command: Command) -> Any: ...


DEFAULT_PREFIX = "wallet-sim"


class StoreError(SimulatorError):
    """A store that cannot be used: a malformed URL, or a server that does not answer."""


class BadCursor(SimulatorError):
    """A paging cursor this store never gave for this listing (malformed, or another listing's): 400 in the
    control API."""


T = TypeVar("T")

#: the page size of a control-API listing when none is asked for, and the most one page may hold
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its items and ``next``, the opaque cursor of the following page (a short
    URL-safe ASCII string), None on the last page."""

    items: list[T]
    next: str | None = None


class StoreUnavailable(InternalError):
    """A shared store did not answer (or a request kept conflicting with others): the dialects' internal-error
    code, and 503 in the control API. Nothing was changed."""


class Rerun(Exception):
    """Raised by a store's ``perform`` when the request must go through the whole pipeline again (admit,
    decide, perform): the configuration it was decided on changed under it (a rule added on another
    replica, a reset). Nothing was applied. The memory store never raises it."""


@dataclass(frozen=True)
class Command:
    """A domain command: its name, its arguments as JSON-able data (what a shared store logs and every
    replica applies) and, where the caller already built it, the local object (a parsed scenario or rule)
    so the replica that runs it first does not parse it again."""

    name: str
    args: dict[str, Any]
    local: Any = field(default=None, compare=False)


class Store:
    """The interface the Simulator calls. Every method has the embedded behaviour (state in this process):
    a shared store overrides the ones it needs."""

    kind = "memory"
    shown = "memory"  # where the state is, for the banner and errors (no password)

    def bind(self, sim: Host) -> None:
        """Told which simulator it serves (before ``open``)."""
        self.sim = sim

    async def open(self) -> None:
        """Connect and load (nothing to do in memory)."""

    async def close(self) -> None:
        """Disconnect."""

    async def admit(self, op: Operation) -> DomainError | None:
        """Checks made before the pipeline (a shared nonce, a shared claim); a refusal is returned."""
        return None

    def claim(self, op: Operation) -> contextlib.AbstractAsyncContextManager[object]:
        """The in-flight claim of a mutating request's transaction id (a second one meanwhile is pending)."""
        if op.mutating and op.transaction is not None:
            return _AsyncClaim(self.sim.ledger.claim(op.dialect, op.agent or "", op.transaction, op.scope))
        return contextlib.nullcontext()

    async def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        """Whether a request with this transaction id holds its in-flight claim right now (what a second
        one meanwhile is answered as pending for); a shared store asks where its claims are."""
        return self.sim.ledger.in_flight(dialect, tenant, txn_id, scope)

    async def decide(self, op: Operation) -> Decision | None:
        return self.sim.engine.decide(op)

    async def perform(self, op: Operation, perform: Perform) -> dict[str, Any]:
        return perform(op)

    async def command(self, command: Command) -> Any:
        """Carry out a domain command (a shared store runs a player command on its working set, and logs a
        configuration one for every replica)."""
        return self.sim.execute(command)

    async def refresh(self) -> None:
        """Bring what the control API reads up to date (the ledger, rule counters, the journal)."""

    def record(self, entry: Entry) -> None:
        """A journal entry was recorded here (a shared store publishes it to the others)."""

    async def health(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": True}

    # the control API's reads. The defaults read this process's ledger (the embedded store, and a store
    # whose ``refresh`` brought the ledger up to date); a shared store that keeps no copy pages through its
    # server instead. ``limit`` is 1..MAX_PAGE (the control API checks it); a cursor this store did not give
    # raises BadCursor. Memory cursors: ``p.<no>`` (players, by Player.no), ``t.<seq>`` and ``h.<seq>``
    # (transactions, a player's history: continue below that seq), ``s.<seq>`` (tombstones): rows added
    # meanwhile never shift a page.

    async def count_players(self) -> int:
        """How many players the ledger holds."""
        return len(self.sim.ledger.players)

    async def read_players(self, dialect: str | None, q: str | None, cursor: str | None, limit: int) -> Page[Player]:
        """Players in the order they were opened (filters: ``dialect``, ``q`` a case-blind part of the id)."""
        after = _position("p", cursor)
        needle = q.lower() if q else None
        found: list[Player] = []
        for player in self.sim.ledger.numbered(0 if after is None else after + 1):
            if (not dialect or player.dialect == dialect) and (needle is None or needle in player.id.lower()):
                found.append(player)
                if len(found) > limit:  # one more than the page: there is a next page
                    break
        return page_of(found, limit, lambda p: f"p.{p.no}")

    async def read_player(
        self, dialect: str, tenant: str, player_id: str, cursor: str | None, limit: int
    ) -> tuple[Player, Page[Transaction]] | None:
        """One player and a page of its transactions, newest first; None if there is no such player."""
        player = self.sim.ledger.player(dialect, tenant, player_id)
        if player is None:
            return None
        below = _position("h", cursor)
        end = len(player.rows) if below is None else bisect.bisect_left(player.rows, below - 1)  # rows are seq - 1
        start = max(end - limit - 1, 0)
        found = [player.history[i] for i in range(end - 1, start - 1, -1)]
        return player, page_of(found, limit, lambda t: f"h.{t.seq}")

    async def read_transactions(
        self, dialect: str | None, player: str | None, status: str | None, cursor: str | None, limit: int
    ) -> Page[Transaction]:
        """Transactions, newest first (filters: ``dialect``, ``player`` id, ``status``)."""
        below = _position("t", cursor)
        log = self.sim.ledger.log
        found: list[Transaction] = []
        if log:
            first = log[0].seq  # seqs of the kept rows run first, first + 1, ... without a gap
            end = len(log) if below is None else max(0, min(len(log), below - first))
            for index in range(end - 1, -1, -1):
                txn = log[index]
                if (
                    (not dialect or txn.dialect == dialect)
                    and (not player or txn.player == player)
                    and (not status or txn.status == status)
                ):
                    found.append(txn)
                    if len(found) > limit:
                        break
        return page_of(found, limit, lambda t: f"t.{t.seq}")

    async def read_tombstones(
        self, dialect: str | None, player: str | None, cursor: str | None, limit: int
    ) -> tuple[Page[Tombstone], dict[str, int]]:
        """Tombstones, newest first (filters: ``dialect``, ``player`` id), and the counters
        ``{"count": how many match the filters in all, "cap": server.max_tombstones, "forgotten": ...}``."""
        below = _position("s", cursor)
        ledger = self.sim.ledger
        matching = [
            s
            for s in ledger.tombstones()
            if (not dialect or s.dialect == dialect) and (not player or s.player == player)
        ]
        found = [s for s in matching if below is None or s.seq < below][: limit + 1]
        counters = {"count": len(matching), "cap": ledger.max_tombstones, "forgotten": ledger.tombstones_forgotten}
        return page_of(found, limit, lambda s: f"s.{s.seq}"), counters

    async def read_invariants(self) -> dict[str, Any]:
        """The ledger's self-check (:meth:`simulator.ledger.Ledger.invariants`)."""
        return self.sim.ledger.invariants()

    async def books(self) -> Books:
        """What the scorecard looks transactions up in (it reads it from a worker thread)."""
        return self.sim.ledger


class _AsyncClaim:
    """The ledger's in-flight claim (a plain context manager) used with ``async with``."""

    __slots__ = ("claim",)

    def __init__(self, claim: contextlib.AbstractContextManager[object]) -> None:
        self.claim = claim

    async def __aenter__(self) -> None:
        self.claim.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.claim.__exit__(kind, exc, tb)  # type: ignore[arg-type]


CURSOR = re.compile(r"([a-z])\.([0-9]{1,18})")


def _position(tag: str, cursor: str | None) -> int | None:
    """The number in a memory cursor ``<tag>.<number>``; None when none is given (the first page)."""
    if not cursor:
        return None
    found = CURSOR.fullmatch(cursor)
    if found is None or found[1] != tag:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this listing gave: pass X-Next-Cursor back unchanged")
    return int(found[2])


def page_of(found: list[T], limit: int, cursor: Callable[[T], str]) -> Page[T]:
    """A page of ``limit`` items from ``found`` (up to one more, read ahead to tell whether more follow)."""
    if limit < 1:
        raise ValueError(f"a page holds 1 to {MAX_PAGE} items, not {limit}")
    if len(found) > limit:
        return Page(found[:limit], cursor(found[limit - 1]))
    return Page(found, None)


def scenario_files(scenario: Scenario) -> list[list[str]]:
    """(source, text) of each file of a scenario, to rebuild it on every replica (loader.combine's layout)."""
    if len(scenario.sources) <= 1:
        return [[src, scenario.text] for src in scenario.sources]
    files: list[list[str]] = []
    rest = scenario.text
    for index, src in enumerate(scenario.sources):
        marker = f"--- # {src}\n"
        assert rest.startswith(marker), "a combined scenario's text starts each file with its marker"
        rest = rest[len(marker) :]
        following = f"\n--- # {scenario.sources[index + 1]}\n" if index + 1 < len(scenario.sources) else None
        end = rest.index(following) if following is not None else len(rest)
        files.append([src, rest[:end]])
        rest = rest[end + 1 :]
    return files


@dataclass(frozen=True)
class StoreURL:
    url: str  # what redis-py connects to (without our ``prefix`` parameter); for a cluster, its first node
    prefix: str  # every key starts with ``{prefix}:``
    nodes: tuple[tuple[str, int], ...] = ()  # a Redis Cluster's startup nodes (empty: one server)

    @property
    def shown(self) -> str:
        """The URL without a password, for the banner and the health check."""
        parts = urllib.parse.urlsplit(self.url)
        if self.nodes:
            hosts = ",".join(f"{host}:{port}" for host, port in self.nodes)
            return f"{parts.scheme}+cluster://{hosts} prefix={self.prefix}"
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + f" prefix={self.prefix}"


def _cluster_nodes(netloc: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """``[user:password@]host:port[,host:port...]`` -> (the credentials part, the nodes)."""
    credentials, _, hosts = netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise StoreError(f"a Redis Cluster node {item!r} must be host:port")
        nodes.append((host.strip("[]"), int(port)))
    return credentials, tuple(nodes)


def parse(text: str) -> StoreURL | None:
    """``memory`` -> None; ``redis://[:password@]host[:port][/db][?prefix=NAME]`` (or ``rediss://``);
    ``redis+cluster://[:password@]host:port[,host:port...][?prefix=NAME]`` for a Redis Cluster."""
    if text == "memory":
        return None
    if text.startswith(("redis+cluster://", "rediss+cluster://")):
        scheme, _, rest = text.partition("+cluster://")
        netloc, _, query_text = rest.partition("?")
        netloc = netloc.rstrip("/")
        credentials, nodes = _cluster_nodes(netloc)
        first = f"{credentials}@" if credentials else ""
        base = parse(f"{scheme}://{first}{nodes[0][0]}:{nodes[0][1]}" + (f"?{query_text}" if query_text else ""))
        assert base is not None
        return StoreURL(base.url, base.prefix, nodes)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise StoreError(
            f"store {text!r} is neither 'memory' nor redis://host:port/db nor redis+cluster://host:port,host:port"
        )
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix or any(c in prefix for c in "{}: \t\r\n"):
        raise StoreError(f"store prefix {prefix!r} must be non-empty, without braces, colons or spaces")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StoreError(f"store database {db!r} must be a number (redis://host:port/0)")
    rest = urllib.parse.urlencode(query, doseq=True)
    return StoreURL(urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), prefix)


def chosen(settings: Settings, flag: str | None) -> Settings:
    """Settings with the store the flag (or WALLET_SIM_STORE, see simulator.config.environ), else the config
    file, chose."""
    value = flag or settings.store
    parse(value)  # refuse a malformed one before anything starts
    return dataclasses.replace(settings, store=value)
