"""The shared store: several simulators (replicas, ``--workers``) on one Redis server, state kept over restarts.

Design: a replicated log. Redis holds, under ``{prefix}:``, an append-only stream of every change to the
wallet state: a *genesis* entry (the scenario the first replica started with), every dialect request that
changed the ledger (the decoded :class:`Operation`, with the time it ran), and every control call that
changed something (``PUT /_sim/players/...``, ``POST /_sim/reset``, scenario and rule changes). Each replica
keeps the ledger in memory, as the embedded store does, and brings it up to date by replaying the entries
it has not seen; a restarted replica replays them all. There is still one definition of the money rules:
the dialects' synchronous ``perform`` runs against the local ledger, live and on replay alike, with the
clock frozen at the entry's time so that every replica computes the same balances.

A request that may change the ledger runs under the store's write lock (``SET NX PX``, taken with the
entries still to replay in one script), then is committed by a Lua script that appends it only if this
replica still holds the lock and the stream still ends where this replica's copy does (compare-and-append).
So two replicas racing on one player are serialised by the server: neither can overdraw nor apply one
transaction twice. A commit that fails (Redis lost, lock expired) leaves nothing in the stream; the local
copy, which ran ahead, is rebuilt from the stream before the next request.

Also in Redis: in-flight claims (``SET NX PX``: "pending" across replicas), XPro nonces (``SET NX EX`` the
replay window) and the token secret, and the scenario's rule counters (one script decides which rule fires
and counts it, so ``nth``/``after``/``times`` hold across replicas; a probability draws from a hash of the
rule's seed and its request count, the same on every replica and every run).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from redis.exceptions import RedisError

from simulator import jsonio
from simulator.config import Settings
from simulator.dialects import fields as F
from simulator.errors import AuthFailed, DomainError, InternalError, TransactionPending
from simulator.journal import Entry, Journal
from simulator.ledger import Ledger, Player, Tombstone, Transaction
from simulator.operations import Operation, Outcome
from simulator.scenarios import loader
from simulator.scenarios.engine import Decision, Engine
from simulator.scenarios.model import Rule, Scenario
from simulator.service import Perform, Simulator
from simulator.sharedjournal import JournalLink
from simulator.store import StoreError, StoreURL

log = logging.getLogger("simulator.store")

LOCK_MS = 5_000  # the write lock expires after this long if its holder vanished
LOCK_WAIT = 5.0  # seconds a request waits for the lock before it answers the internal error
CLAIM_MS = 120_000  # an in-flight claim expires after this long if its holder vanished
CONNECT_TIMEOUT = 2.0
REPLAY_CHUNK = 5_000
GROUP = 200  # requests committed together at most
#: control calls that change nothing (answered without the lock and never logged)
READ_ONLY_POSTS = ("/_sim/journal/verify", "/_sim/scenario/validate")
#: control calls whose replay restarts every rule's counters
RESETS = ("/_sim/reset", "/_sim/scenario")
OP_FIELDS = ("dialect", "operation", "endpoint", "agent", "player", "transaction", "scope", "round", "game")

ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local start = '-'
if ARGV[3] ~= '0-0' then start = '(' .. ARGV[3] end
return redis.call('XRANGE', KEYS[2], start, '+')
"""
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local tail = '0-0'
if #last > 0 then tail = last[1][1] end
if tail ~= ARGV[2] then return false end
local claims = tonumber(ARGV[3])
local id
for i = 4 + claims, #ARGV, 3 do
  id = redis.call('XADD', KEYS[2], '*', 'k', ARGV[i], 't', ARGV[i + 1], 'd', ARGV[i + 2])
end
redis.call('DEL', KEYS[1])
for i = 1, claims do
  if redis.call('GET', KEYS[2 + i]) == ARGV[3 + i] then redis.call('DEL', KEYS[2 + i]) end
end
return id
"""
# KEYS: the lock or claims to free; ARGV: the value each must still hold (else it is someone else's)
RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then redis.call('DEL', key) end
end
return 0
"""
GENESIS = """
if redis.call('XLEN', KEYS[1]) == 0 then
  return redis.call('XADD', KEYS[1], '*', 'k', 'genesis', 't', ARGV[1], 'd', ARGV[2])
end
return false
"""
# KEYS: the counters of the rules whose static match holds, in order; ARGV: 5 per rule
# (times, nth, after, probability, seed; -1 for "not set"). Mirrors Rule.fires.
DECIDE = """
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 5
  local times, nth = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local after, p = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local hits = tonumber(redis.call('HGET', key, 'hits') or '0')
  if times < 0 or hits < times then
    local seen = redis.call('HINCRBY', key, 'seen', 1)
    local fires = true
    if nth >= 0 and seen ~= nth then fires = false end
    if fires and after >= 0 and seen <= after then fires = false end
    if fires and p >= 0 then
      local h = redis.sha1hex(ARGV[b + 5] .. ':' .. seen)
      if tonumber(string.sub(h, 1, 8), 16) / 4294967296 >= p then fires = false end
    end
    if fires then
      redis.call('HINCRBY', key, 'hits', 1)
      return {i, seen}
    end
  end
end
return {0, 0}
"""


Waiting = tuple[Operation, Perform, "asyncio.Future[dict[str, Any]]"]
Answer = tuple["asyncio.Future[dict[str, Any]]", dict[str, Any], BaseException | None]


def _fail(group: list[Waiting], error: BaseException) -> None:
    for _, _, answer in group:
        if not answer.done():
            answer.set_exception(error)


class StoreUnavailable(InternalError):
    """Redis did not answer (or the write lock could not be had): the dialects' internal-error code."""


class SharedClock:
    """The simulator's clock, frozen while a change runs so that its replay computes the same times."""

    def __init__(self, base: Callable[[], float]) -> None:
        self.base = base
        self.frozen: float | None = None

    def __call__(self) -> float:
        return self.frozen if self.frozen is not None else self.base()

    @contextlib.contextmanager
    def at(self, when: float) -> Iterator[None]:
        self.frozen = when
        try:
            yield
        finally:
            self.frozen = None


class RecordingLedger(Ledger):
    """The in-memory ledger, noting whether a request changed it (only those go to the shared log)."""

    changed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # the Ledger's own arguments
        super().__init__(*args, **kwargs)
        self.claimed: set[tuple[str, str, str, str]] = set()  # this process's claims (the others are in Redis)

    def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        return (dialect, tenant, scope, txn_id) in self.claimed

    def open(self, dialect: str, tenant: str, player_id: str, currency: str, balance: Decimal, **flags: Any) -> Player:
        self.changed = True
        return super().open(dialect, tenant, player_id, currency, balance, **flags)

    def set_balance(self, player: Player, balance: Decimal, reason: str = "admin") -> Transaction | None:
        self.changed = True
        return super().set_balance(player, balance, reason)

    def bind_session(self, player: Player, session_id: str, create: bool = True) -> str | None:
        before = len(player.sessions)
        owner = super().bind_session(player, session_id, create)
        self.changed = self.changed or len(player.sessions) != before
        return owner

    def post(self, player: Player, txn_id: str, kind: str, **options: Any) -> Transaction:
        self.changed = True
        return super().post(player, txn_id, kind, **options)

    def bury_transaction(
        self, dialect: str, tenant: str, player_id: str, txn_id: str, *, by: str, scope: str = ""
    ) -> Tombstone:
        self.changed = True
        return super().bury_transaction(dialect, tenant, player_id, txn_id, by=by, scope=scope)

    def bury_round(self, player: Player, round_id: str, *, by: str) -> Tombstone:
        self.changed = True
        return super().bury_round(player, round_id, by=by)

    # a stone found is about to count a refused late arrival: that count is state too
    def transaction_tombstone(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Tombstone | None:
        stone = super().transaction_tombstone(dialect, tenant, txn_id, scope)
        self.changed = self.changed or stone is not None
        return stone

    def round_tombstone(self, player: Player, round_id: str) -> Tombstone | None:
        stone = super().round_tombstone(player, round_id)
        self.changed = self.changed or stone is not None
        return stone


class Keys:
    def __init__(self, prefix: str) -> None:
        base = "{" + prefix + "}:"  # one hash slot per prefix (Redis Cluster keeps a script's keys together)
        self.log = base + "log"
        self.lock = base + "lock"
        self.token_secret = base + "token-secret"
        self.claim = base + "claim:"
        self.nonce = base + "nonce:"
        self.rule = base + "rule:"
        self.journal = base + "journal"


def encode_op(op: Operation) -> str:
    data: dict[str, Any] = {name: getattr(op, name) for name in OP_FIELDS}
    data.update(currency=op.currency, amount=op.amount, request=op.request, mutating=op.mutating)
    data["params"] = {k: v for k, v in op.params.items() if k != "secret"}
    return jsonio.dumps(data)


def decode_op(text: str) -> Operation:
    data = jsonio.loads(text)
    op = Operation(**{name: data[name] for name in OP_FIELDS})
    op.currency, op.amount, op.request, op.mutating = (
        data["currency"],
        data["amount"],
        data["request"],
        data["mutating"],
    )
    op.params = data["params"]
    if "fingerprint" in op.params and isinstance(op.request, dict):
        # the fingerprint is a hash of the request, salted per process: recompute it in this one
        op.params["fingerprint"] = F.fingerprint(F.json_object(op.request))
    op.authenticated = True
    return op


def scenario_files(scenario: Scenario) -> list[list[str]]:
    """(source, text) of each file of a scenario, to rebuild it on every replica (loader.combine's layout)."""
    if len(scenario.sources) <= 1:
        return [[src, scenario.text] for src in scenario.sources]
    files: list[list[str]] = []
    rest = scenario.text
    for index, src in enumerate(scenario.sources):
        marker = f"# --- {src}\n"
        assert rest.startswith(marker), "a combined scenario's text starts each file with its marker"
        rest = rest[len(marker) :]
        following = f"\n# --- {scenario.sources[index + 1]}\n" if index + 1 < len(scenario.sources) else None
        end = rest.index(following) if following is not None else len(rest)
        files.append([src, rest[:end]])
        rest = rest[end + 1 :]
    return files


class SharedSimulator(Simulator):
    def __init__(
        self,
        settings: Settings,
        scenario: Scenario | None,
        client: aioredis.Redis,
        where: StoreURL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.shared_clock = SharedClock(clock)
        super().__init__(settings, scenario, self.shared_clock, sleep)
        server = settings.server
        self.recording = RecordingLedger(
            self.shared_clock, server.max_tombstones, server.max_transactions, server.max_players
        )
        self.ledger = self.recording
        self.redis = client
        self.where = where
        self.keys = Keys(where.prefix)
        self.cursor = "0-0"  # the last log entry applied here
        self.dirty = True  # the local copy must be rebuilt from the log before it is used
        self.token = f"{secrets.token_hex(8)}"
        self._local = asyncio.Lock()  # one change at a time in this process
        self._generations: dict[Rule, str] = {}  # rule -> the log entry that (re)started its counters
        self._admin: web.Application | None = None
        self._replayers: dict[str, Perform] = {}
        self._waiting: list[Waiting] = []  # requests queued for the next group commit
        self._held: dict[int, tuple[tuple[str, str, str, str], tuple[str, str]]] = {}  # id(op) -> its claim
        self._freed: set[int] = set()  # id(op) of claims already released with their group
        self._committer: asyncio.Task[None] | None = None
        self.journal_link = JournalLink(client, self.keys.journal, self.journal, self.token)
        self._acquire = client.register_script(ACQUIRE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._genesis = client.register_script(GENESIS)
        self._decide = client.register_script(DECIDE)

    # wiring (app.py and control/__init__.py call these)

    def attach(self, performers: dict[str, Perform], admin: web.Application) -> None:
        self._replayers = performers
        self._admin = admin

    async def open(self) -> None:
        with _store_errors():
            await self.sync()
            await self.journal_link.pull()
        self.journal_link.start()

    async def close(self) -> None:
        await self.journal_link.stop()
        await self.redis.aclose()

    def record(self, entry: Entry) -> None:
        super().record(entry)
        self.journal_link.publish(entry)

    async def store_health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"kind": "redis", "url": self.where.shown, "log_position": self.cursor}
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.redis.ping()
            health["ok"] = True
        except (RedisError, OSError, TimeoutError) as exc:
            health.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        return health

    # the request pipeline

    async def run(self, op: Operation, perform: Perform) -> Outcome:
        """One round trip before the pipeline: the XPro nonce (``SET NX EX``), the in-flight claim
        (``SET NX PX``) and the log entries other replicas appended (so the rules are current)."""
        nonce = f"{self.keys.nonce}{op.agent}:{op.params['nonce']}" if "nonce" in op.params and op.agent else None
        claim = (op.dialect, op.agent or "", op.scope, op.transaction) if op.mutating and op.transaction else None
        held = (self.keys.claim + jsonio.dumps(list(claim)), secrets.token_hex(8)) if claim else None
        # a status check asks whether another replica holds the transaction in flight (XPro answers 35 then)
        asked = (
            (op.dialect, op.agent or "", op.scope, op.transaction)
            if op.operation == "check" and op.transaction
            else None
        )
        try:
            with _store_errors():
                if self.dirty:
                    await self.sync()
                pipe = self.redis.pipeline(transaction=False)
                if nonce is not None:
                    pipe.set(nonce, 1, nx=True, ex=max(1, int(self.settings.xpro.timestamp_skew)))
                if held is not None:
                    pipe.set(held[0], held[1], nx=True, px=CLAIM_MS)
                if asked is not None:
                    pipe.exists(self.keys.claim + jsonio.dumps(list(asked)))
                pipe.xrange(self.keys.log, self._after(), "+")
                *taken, entries = await pipe.execute()
                if asked is not None:
                    op.params["in_flight"] = bool(taken.pop())
                await self._catch_up(entries)
        except DomainError as err:
            return Outcome(error=err)
        if nonce is not None and not taken.pop(0):
            if held is not None and taken[0]:
                await self._free(held)
            return Outcome(error=AuthFailed("x-nonce was already used (replay, seen by another replica)"))
        if held is not None and claim is not None:
            if not taken[0]:
                return Outcome(error=TransactionPending(f"transaction {claim[3]!r} is still being processed"))
            self._held[id(op)] = (claim, held)
        return await super().run(op, perform)

    def claim(self, op: Operation) -> contextlib.AbstractAsyncContextManager[object]:
        return self._holding(id(op)) if id(op) in self._held else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def _holding(self, key: int) -> AsyncIterator[None]:
        """The claim run() took, released when the pipeline is done with it: by the script that commits
        (or unlocks) the request's group, or here if the request never reached the ledger."""
        claim, held = self._held[key]
        self.recording.claimed.add(claim)
        try:
            yield
        finally:
            self.recording.claimed.discard(claim)
            del self._held[key]
            if key in self._freed:
                self._freed.discard(key)
            else:
                await self._free(held)

    async def _free(self, held: tuple[str, str]) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[held[0]], args=[held[1]])

    async def decide(self, op: Operation) -> Decision | None:
        with _store_errors():  # the log was read by run(), in the same round trip as the claim
            candidates = [rule for rule in self.engine.rules if rule.match.holds(op)]
            if not candidates:
                return None
            keys, args = [], []
            for rule in candidates:
                m = rule.match
                keys.append(self._counter(rule))
                args += [_opt(rule.times), _opt(m.nth), _opt(m.after), _opt(m.probability), rule.rng_seed]
            index, seen = await self._decide(keys=keys, args=args)
        if not index:
            return None
        rule = candidates[int(index) - 1]
        rule.rng = random.Random(f"{rule.rng_seed}:{seen}")  # the delay drawn the same on every replica
        return Engine._decision(rule)

    async def perform(self, op: Operation, perform: Perform) -> dict[str, Any]:
        """Queue the request for the next group commit and wait for its answer (see _commit_groups)."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((op, perform, answer))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_groups())
        return await answer

    async def _commit_groups(self) -> None:
        """Group commit: the requests that queued up while the last group was committed are run one after
        the other under ONE write lock and committed by ONE script, so the two round trips to Redis are
        shared by the group. A failed commit fails the whole group (each answer may depend on the ones
        before it), and nothing of it is in the log."""
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP], self._waiting[GROUP:]
            try:
                answers = await self._commit_group(group)
            except StoreUnavailable as exc:
                _fail(group, exc)
                continue
            except Exception as exc:  # a bug: every request of the group gets the internal error
                log.exception("simulator bug while committing a group")
                self.dirty = True
                _fail(group, InternalError(f"simulator bug: {type(exc).__name__}: {exc}"))
                continue
            for answer, data, error in answers:
                if answer.done():
                    continue
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(data)

    async def _commit_group(self, group: list[Waiting]) -> list[Answer]:
        async with self._local:
            with _store_errors():
                await self._lock_and_catch_up()
            try:
                answers, entries = self._run_group(group)
            except BaseException:
                await self._unlock()
                raise
            ops = [id(op) for op, _, _ in group if id(op) in self._held]
            claims = [self._held[key][1] for key in ops]  # released by the same script
            if entries:
                await self._append(entries, claims)
            else:
                await self._unlock(claims)
            self._freed.update(ops)
            return answers

    def _run_group(self, group: list[Waiting]) -> tuple[list[Answer], list[list[str]]]:
        answers: list[Answer] = []
        entries: list[list[str]] = []
        for op, perform, answer in group:
            when = self.shared_clock.base()
            self.recording.changed = False
            data: dict[str, Any] = {}
            error: BaseException | None = None
            with self.shared_clock.at(when):
                try:
                    data = perform(op)
                except Exception as exc:  # a domain error, or a bug the dialect reports as internal
                    error = exc
            if self.recording.changed:
                entries.append(["op", repr(when), encode_op(op)])
            answers.append((answer, data, error))
        return answers, entries

    # the log

    async def sync(self) -> None:
        """Apply the entries other replicas appended (all of them, after a rebuild)."""
        async with self._local:
            if self.dirty:
                await self._rebuild()
            for entry_id, fields in await self._entries():
                await self._apply(entry_id, fields)

    async def _entries(self, count: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Log entries after this replica's cursor."""
        found = await self.redis.xrange(self.keys.log, self._after(), "+", count=count)
        return cast(list[tuple[str, dict[str, str]]], found)

    def _after(self) -> str:
        return "-" if self.cursor == "0-0" else "(" + self.cursor

    async def _catch_up(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Apply entries read without the local lock: those the cursor has passed meanwhile are skipped."""
        if not any(_stream_id(entry_id) > _stream_id(self.cursor) for entry_id, _ in entries):
            return  # nothing new (most often: this replica's own last commit); no need to wait for the lock
        async with self._local:
            if self.dirty:
                return  # the next change rebuilds from the whole log
            for entry_id, fields in entries:
                if _stream_id(entry_id) > _stream_id(self.cursor):
                    await self._apply(entry_id, fields)

    async def _rebuild(self) -> None:
        """Replay the whole log into an empty copy (this replica's journal is kept: resets replayed here
        are history, not news)."""
        journal, self.journal = self.journal, Journal(1)
        try:
            await self._replay_all()
        finally:
            self.journal = journal

    async def _replay_all(self) -> None:
        self.engine = Engine(Scenario.empty())
        self.ledger.reset()
        self._generations.clear()
        self.cursor = "0-0"
        while True:
            chunk = await self._entries(REPLAY_CHUNK)
            for entry_id, fields in chunk:
                await self._apply(entry_id, fields)
            if len(chunk) < REPLAY_CHUNK:
                break
        self.dirty = False

    async def _lock_and_catch_up(self) -> None:
        if self.dirty:
            await self._rebuild()
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.0005
        while True:
            entries = await self._acquire(keys=[self.keys.lock, self.keys.log], args=[self.token, LOCK_MS, self.cursor])
            if entries is not None:
                break
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the store's write lock was busy for {LOCK_WAIT:g}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)  # another replica holds it: it frees it within a group commit
        try:
            for entry_id, flat in entries:
                await self._apply(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
        except BaseException:
            await self._unlock()
            raise

    async def _append(self, entries: list[list[str]], claims: Sequence[tuple[str, str]] = ()) -> None:
        """Commit changes (kind, time, data each) and free the claims given; on any failure the local copy
        (already changed) is rebuilt before its next use."""
        keys = [self.keys.lock, self.keys.log, *(key for key, _ in claims)]
        args: list[str | int] = [self.token, self.cursor, len(claims), *(value for _, value in claims)]
        args += [part for entry in entries for part in entry]
        try:
            entry_id = await self._commit(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self.dirty = True
            raise StoreUnavailable(
                f"the store was lost while committing ({type(exc).__name__}); nothing applied"
            ) from None
        if entry_id is None:
            self.dirty = True
            raise StoreUnavailable("the store's write lock expired before the commit; nothing applied")
        self.cursor = entry_id

    async def _unlock(self, claims: list[tuple[str, str]] | None = None) -> None:
        """Free the write lock (and claims); a failure is harmless: the lock expires, claims too."""
        held = [(self.keys.lock, self.token), *(claims or [])]
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[key for key, _ in held], args=[value for _, value in held])

    async def _apply(self, entry_id: str, fields: dict[str, str]) -> None:
        kind, when, data = fields["k"], float(fields["t"]), fields["d"]
        with self.shared_clock.at(when):
            if kind == "op":
                op = decode_op(data)
                perform = self._replayers.get(op.dialect)
                if perform is not None:
                    with contextlib.suppress(DomainError):  # a refused request that left a tombstone
                        perform(op)
            elif kind == "genesis":
                self._start(jsonio.loads(data))
            elif kind == "admin":
                await self._replay_admin(jsonio.loads(data))
        self._restart_counters(
            entry_id, kind == "genesis" or (kind == "admin" and jsonio.loads(data)["path"] in RESETS)
        )
        self.cursor = entry_id

    def _restart_counters(self, entry_id: str, every_rule: bool) -> None:
        """Give fresh counters to the rules an entry added (or, for a reset or new scenario, to all). The
        key names the entry and the rule's position then, the same on every replica, and stays the rule's
        while other rules come and go."""
        for index, rule in enumerate(self.engine.rules):
            if every_rule or rule not in self._generations:
                self._generations[rule] = f"{entry_id}:{index}"

    def _start(self, genesis: dict[str, Any]) -> None:
        parsed = [loader.parse(text, src, self.settings, i) for i, (src, text) in enumerate(genesis["files"])]
        self.replace_scenario(loader.combine(parsed))

    def _counter(self, rule: Rule) -> str:
        return self.keys.rule + self._generations.get(rule, f"unlogged:{id(rule)}")

    async def refresh_counters(self) -> None:
        """Copy the shared rule counters onto the local rules (what the control API reports)."""
        rules = list(self.engine.rules)
        if not rules:
            return
        pipe = self.redis.pipeline(transaction=False)
        for rule in rules:
            pipe.hmget(self._counter(rule), "seen", "hits")
        for rule, (seen, hits) in zip(rules, await pipe.execute(), strict=True):
            rule.seen, rule.hits = int(seen or 0), int(hits or 0)

    # the control API

    async def control(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every control call, past the guard: reads see the shared state; changes are made under the
        write lock and logged, so that every replica makes them too."""
        if request.path == "/_sim/health":
            return await handler(request)
        try:
            if request.method in ("GET", "HEAD", "OPTIONS") or request.path in READ_ONLY_POSTS:
                with _store_errors():
                    await self.sync()
                    await self.refresh_counters()
                    await self.journal_link.pull()
                return await handler(request)
            body = await request.read()
            async with self._local:
                with _store_errors():
                    await self._lock_and_catch_up()
                return await self._admin_change(request, handler, body)
        except StoreUnavailable as exc:
            return web.json_response({"error": str(exc), "store": self.where.shown}, status=503)

    async def _admin_change(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], body: bytes
    ) -> web.StreamResponse:
        committed = False
        try:
            when = self.shared_clock.base()
            with self.shared_clock.at(when):
                response = await handler(request)
            if response.status < 400:
                entry = {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string,
                    "type": request.headers.get("Content-Type", ""),
                    "body": base64.b64encode(body).decode(),
                }
                await self._append([["admin", repr(when), jsonio.dumps(entry)]])
                committed = True
                if request.path in (*RESETS, "/_sim/journal"):  # each clears the journal: every replica's
                    with contextlib.suppress(RedisError, OSError):
                        await self.journal_link.clear()
                self._restart_counters(self.cursor, request.path in RESETS)
            return response
        finally:
            if not committed:
                await self._unlock()

    async def _replay_admin(self, entry: dict[str, Any]) -> None:
        assert self._admin is not None, "attach() runs before the log is read"
        body = base64.b64decode(entry["body"])
        path = entry["path"] + (f"?{entry['query']}" if entry["query"] else "")
        headers = {"Content-Type": entry["type"]} if entry["type"] else {}
        probe = make_mocked_request(entry["method"], path, headers, app=self._admin)
        match = await self._admin.router.resolve(probe)
        loop = asyncio.get_running_loop()
        payload = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        payload.feed_data(body)
        payload.feed_eof()
        request = make_mocked_request(
            entry["method"], path, headers, app=self._admin, match_info=dict(match), payload=payload
        )
        handler = getattr(match.handler, "__wrapped__", match.handler)  # past the guard: it was checked live
        try:
            await handler(request)
        except Exception:  # it succeeded where it was made: the same call on the same state cannot fail
            log.exception("replaying %s %s failed", entry["method"], entry["path"])


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _opt(value: float | None) -> str:
    return "-1" if value is None else repr(value)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Redis errors as the internal error every dialect documents."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"the shared store did not answer: {type(exc).__name__}: {exc}") from None


def _client(where: StoreURL) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        where.url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=LOCK_WAIT
    )


async def ping(where: StoreURL) -> None:
    client = _client(where)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + 1):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreError(f"cannot reach the store {where.shown}: {exc}") from None
    finally:
        await client.aclose()


async def connect(
    settings: Settings,
    scenario: Scenario | None,
    where: StoreURL,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> SharedSimulator:
    """Connect, share one XPro token secret, and start the log with this scenario if it is empty."""
    await ping(where)
    client = _client(where)
    keys = Keys(where.prefix)
    try:
        if not settings.xpro.token_secret_given:  # random per process: the first replica's is everyone's
            await client.set(keys.token_secret, settings.xpro.token_secret, nx=True)
            secret = str(await client.get(keys.token_secret))
            settings = dataclasses.replace(settings, xpro=dataclasses.replace(settings.xpro, token_secret=secret))
        scenario = scenario or Scenario.empty()
        genesis = jsonio.dumps({"files": scenario_files(scenario)})
        started = await client.eval(GENESIS, 1, keys.log, repr(clock()), genesis)
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreError(f"cannot use the store {where.shown}: {exc}") from None
    if started is None:
        log.info("joining the shared state at %s (its scenario, players and transactions)", where.shown)
    return SharedSimulator(settings, scenario, client, where, clock, sleep)
