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
import contextlib
import dataclasses
import logging
import math
import random
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from simulator import jsonio
from simulator.config import Settings
from simulator.errors import AuthFailed, DomainError, InternalError, SimulatorError, TransactionPending
from simulator.journal import Entry, Journal
from simulator.operations import Operation
from simulator.scenarios.engine import Decision, Engine
from simulator.scenarios.model import Rule, Scenario
from simulator.store.base import (
    Command,
    Host,
    Perform,
    Store,
    StoreError,
    StoreUnavailable,
    StoreURL,
    scenario_files,
)
from simulator.store.journal import JournalLink

log = logging.getLogger("simulator.store")

LOCK_MS = 2_000  # the write lock expires after this long if its holder vanished (a group commits in ms)
LOCK_WAIT = 5.0  # seconds a request waits for the lock: more than LOCK_MS, so a dead holder's lock expires
# while requests still wait for it. An in-flight claim lives server.request_timeout at most: a claim
# orphaned by a killed replica or an outage answers "pending" no longer than that. (A claim outlived by a
# long injected delay costs nothing but the "pending" answer: the ledger refuses a second apply.)
CONNECT_TIMEOUT = 2.0
REPLAY_CHUNK = 5_000
PRUNE_CHUNK = 1_000
GROUP = 200  # requests committed together at most
STREAK = 8  # groups committed in a row under one lock while requests wait, at most
#: domain commands that restart every rule's counters, and those that empty the journal
RESETS = ("reset", "scenario")
CLEARS_JOURNAL = ("reset", "scenario", "journal_clear")
OP_FIELDS = ("dialect", "operation", "endpoint", "agent", "player", "transaction", "scope", "round", "game")

# KEYS: lock, log, identity; ARGV: token, lock ms, cursor, this replica's idea of the store's identity.
# -1: the identity changed (the store lost its data); false: the lock is someone else's.
ACQUIRE = """
if redis.call('GET', KEYS[3]) ~= ARGV[4] then return -1 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local start = '-'
if ARGV[3] ~= '0-0' then start = '(' .. ARGV[3] end
return redis.call('XRANGE', KEYS[2], start, '+')
"""
# KEYS: lock, log, the claims to free; ARGV: token, the log's tail as this replica knows it, keep (ms to
# keep the lock for the next group, 0: free it), the number of claims, their values, then the entries.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local tail = '0-0'
if #last > 0 then tail = last[1][1] end
if tail ~= ARGV[2] then return false end
local claims = tonumber(ARGV[4])
local id
for i = 5 + claims, #ARGV, 3 do
  id = redis.call('XADD', KEYS[2], '*', 'k', ARGV[i], 't', ARGV[i + 1], 'd', ARGV[i + 2])
end
if ARGV[3] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
for i = 1, claims do
  if redis.call('GET', KEYS[2 + i]) == ARGV[4 + i] then redis.call('DEL', KEYS[2 + i]) end
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
# KEYS: log, identity; ARGV: time, genesis data, a new identity. Starts the log (with its identity) if it
# is empty; returns {identity, 1 if this call started it}.
GENESIS = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('XADD', KEYS[1], '*', 'k', 'genesis', 't', ARGV[1], 'd', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3])
  return {ARGV[3], 1}
end
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return {redis.call('GET', KEYS[2]), 0}
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


Waiting = tuple[Operation, "Perform", "asyncio.Future[dict[str, Any]]"]
Answer = tuple["asyncio.Future[dict[str, Any]]", dict[str, Any], BaseException | None]


def _fail(group: list[Waiting], error: BaseException) -> None:
    for _, _, answer in group:
        if not answer.done():
            answer.set_exception(error)


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
        self.identity = base + "identity"  # drawn when the log starts: gone or changed = the data was lost


def encode_op(op: Operation) -> str:
    """What replaying a request needs: the decoded fields and the dialect's params (the payload's
    fingerprint among them), never the request itself: unknown extra fields are not kept."""
    data: dict[str, Any] = {name: getattr(op, name) for name in OP_FIELDS}
    data.update(currency=op.currency, amount=op.amount, mutating=op.mutating)
    data["params"] = {k: v for k, v in op.params.items() if k != "secret"}
    return jsonio.dumps(data)


def decode_op(text: str) -> Operation:
    data = jsonio.loads(text)
    op = Operation(**{name: data[name] for name in OP_FIELDS})
    op.currency, op.amount, op.mutating = data["currency"], data["amount"], data["mutating"]
    op.params = data["params"]
    if "fingerprint" in op.params:  # JSON numbers come back as Decimal
        op.params["fingerprint"] = int(op.params["fingerprint"])
    op.authenticated = True
    return op


class RedisStore(Store):
    """The replicated-log store (see the module docstring); given to a Simulator like any store."""

    kind = "redis"
    sim: Host

    def __init__(self, client: aioredis.Redis, where: StoreURL) -> None:
        self.redis = client
        self.where = where
        self.shown = where.shown
        self.keys = Keys(where.prefix)
        self.cursor = "0-0"  # the last log entry applied here
        self.identity = ""  # the store's identity key when this replica loaded it
        self.lost = 0  # times the store was found to have lost its data
        self.lost_at: float | None = None
        self.dirty = True  # the local copy must be rebuilt from the log before it is used
        self.token = f"{secrets.token_hex(8)}"
        self._local = asyncio.Lock()  # one change at a time in this process
        self._generations: dict[Rule, str] = {}  # rule -> the log entry that (re)started its counters
        self._replayers: dict[str, Perform] = {}
        self._waiting: list[Waiting] = []  # requests queued for the next group commit
        self._held: dict[int, tuple[tuple[str, str, str, str], tuple[str, str]]] = {}  # id(op) -> its claim
        self._freed: set[int] = set()  # id(op) of claims already released with their group
        self._committer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._lock_until = 0.0  # monotonic time until which this replica may count on holding the lock
        self._streak = 0  # groups committed in a row under one lock
        self._acquire = client.register_script(ACQUIRE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._genesis = client.register_script(GENESIS)
        self._decide = client.register_script(DECIDE)

    def clock(self, base: Callable[[], float]) -> Callable[[], float]:
        self.shared_clock = SharedClock(base)
        return self.shared_clock

    def bind(self, sim: Host) -> None:
        self.sim = sim
        self.journal_link = JournalLink(self.redis, self.keys.journal, sim.journal, self.token)

    def attach(self, performers: dict[str, Perform]) -> None:
        self._replayers = performers

    async def open(self) -> None:
        """Start the log with this replica's scenario if it is empty, then load it."""
        with _store_errors():
            if not await self._start_log():
                log.info("joining the shared state at %s (its scenario, players and transactions)", self.where.shown)
            await self.sync()
            await self.journal_link.pull()
        self.journal_link.start()

    async def close(self) -> None:
        if self._pruner is not None:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._pruner
        await self.journal_link.stop()
        await self.redis.aclose()

    def record(self, entry: Entry) -> None:
        self.journal_link.publish(entry)

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"kind": "redis", "url": self.where.shown, "log_position": self.cursor}
        if self.journal_link.dropped:  # journal entries dropped unpublished while Redis was slow or away
            health["journal_dropped"] = self.journal_link.dropped
        if self.lost:  # the store lost its data: said here until this replica restarts
            health["data_lost"] = {"times": self.lost, "last": self.lost_at}
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.redis.ping()
            health["ok"] = True
        except (RedisError, OSError, TimeoutError) as exc:
            health.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        return health

    # the request pipeline

    async def admit(self, op: Operation) -> DomainError | None:
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
                    # as long as any replica keeps a nonce locally: twice the skew (a timestamp up to the skew
                    # in the future stays acceptable until the skew has passed after it)
                    pipe.set(nonce, 1, nx=True, ex=max(1, math.ceil(2 * self.sim.settings.xpro.timestamp_skew)))
                if held is not None:
                    pipe.set(held[0], held[1], nx=True, px=int(self.sim.settings.server.request_timeout * 1000))
                if asked is not None:
                    pipe.exists(self.keys.claim + jsonio.dumps(list(asked)))
                pipe.xrange(self.keys.log, self._after(), "+")
                *taken, entries = await pipe.execute()
                if asked is not None:
                    op.params["in_flight"] = bool(taken.pop())
                await self._catch_up(entries)
        except DomainError as err:
            return err
        if nonce is not None and not taken.pop(0):
            if held is not None and taken[0]:
                await self._free(held)
            return AuthFailed("x-nonce was already used (replay, seen by another replica)")
        if held is not None and claim is not None:
            if not taken[0]:
                return TransactionPending(f"transaction {claim[3]!r} is still being processed")
            self._held[id(op)] = (claim, held)
        return None

    def claim(self, op: Operation) -> contextlib.AbstractAsyncContextManager[object]:
        return self._holding(id(op)) if id(op) in self._held else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def _holding(self, key: int) -> AsyncIterator[None]:
        """The claim run() took, released when the pipeline is done with it: by the script that commits
        (or unlocks) the request's group, or here if the request never reached the ledger."""
        claim, held = self._held[key]
        dialect, tenant, scope, txn_id = claim
        try:
            with self.sim.ledger.claim(dialect, tenant, txn_id, scope):  # what ``in_flight`` reports here
                yield
        finally:
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
            candidates = [rule for rule in self.sim.engine.rules if rule.match.holds(op)]
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
        """One group under the write lock. While more requests wait, the lock is kept for the next group
        (extended by the commit, at most STREAK groups in a row, so other replicas get their turn): the
        next group then needs no round trip to take it, as nothing can have been appended meanwhile."""
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
            keep = bool(self._waiting) and self._streak < STREAK
            if entries:
                await self._append(entries, claims, keep=keep)
            elif keep:
                await self._release_claims(claims)
            else:
                await self._unlock(claims)
            self._freed.update(ops)
            return answers

    def _run_group(self, group: list[Waiting]) -> tuple[list[Answer], list[list[str]]]:
        answers: list[Answer] = []
        entries: list[list[str]] = []
        for op, perform, answer in group:
            when = self.shared_clock.base()
            before = self.sim.ledger.changes
            data: dict[str, Any] = {}
            error: BaseException | None = None
            with self.shared_clock.at(when):
                try:
                    data = perform(op)
                except Exception as exc:  # a domain error, or a bug the dialect reports as internal
                    error = exc
            if self.sim.ledger.changes != before:
                entries.append(["op", repr(when), encode_op(op)])
            answers.append((answer, data, error))
        return answers, entries

    # the log

    async def sync(self) -> None:
        """Apply the entries other replicas appended (all of them, after a rebuild)."""
        async with self._local:
            if self.dirty:
                await self._rebuild()
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self.keys.identity)
            pipe.xrange(self.keys.log, self._after(), "+")
            identity, entries = await pipe.execute()
            if identity != self.identity:
                await self._lost()
                return
            for entry_id, fields in entries:
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

    async def _start_log(self) -> bool:
        """Start the log with this replica's scenario if it is empty (a new store, or one that lost its
        data), and learn the store's identity; True if this call started it."""
        genesis = jsonio.dumps({"files": scenario_files(self.sim.scenario)})
        args = [repr(self.shared_clock.base()), genesis, secrets.token_hex(8)]
        identity, started = await self._genesis(keys=[self.keys.log, self.keys.identity], args=args)
        self.identity = str(identity)
        return bool(started)

    async def _lost(self) -> None:
        """The store's identity changed: Redis lost its data (restarted without persistence, FLUSHALL).
        This replica's copy is dropped and rebuilt from the store, as every other replica's is, so none
        serves a copy of its own; the loss is counted in the health check and logged (``_rebuild``)."""
        self.dirty = True
        await self._rebuild()

    def _note_lost(self) -> None:
        self.lost += 1
        self.lost_at = self.shared_clock.base()
        log.error(
            "the store %s lost its data (its identity key changed): serving from the store's state again",
            self.where.shown,
            extra={"fields": {"action": "store_lost", "store": self.where.shown}},
        )

    async def _rebuild(self) -> None:
        """Replay the whole log into an empty copy (this replica's journal is kept: resets replayed here
        are history, not news). A log found empty is started again with this replica's scenario."""
        known = self.identity
        await self._start_log()
        if known and self.identity != known:
            self._note_lost()
        sim = self.sim
        journal, sim.journal = sim.journal, Journal(1)
        try:
            await self._replay_all()
        finally:
            sim.journal = journal

    async def _replay_all(self) -> None:
        self.sim.engine = Engine(Scenario.empty())
        self.sim.ledger.reset()
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
            self._lock_until = 0.0
        if time.monotonic() < self._lock_until:  # still held since the last group (see _commit_group)
            self._streak += 1
            return
        self._streak = 0
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.0005
        while True:
            keys = [self.keys.lock, self.keys.log, self.keys.identity]
            entries = await self._acquire(keys=keys, args=[self.token, LOCK_MS, self.cursor, self.identity])
            if entries == -1:
                await self._lost()
                continue
            if entries is not None:
                break
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the store's write lock was busy for {LOCK_WAIT:g}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)  # another replica holds it: it frees it within a group commit
        self._lock_until = time.monotonic() + LOCK_MS / 2000  # held: half the expiry, a margin for slow hops
        try:
            for entry_id, flat in entries:
                await self._apply(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
        except BaseException:
            await self._unlock()
            raise

    async def _append(
        self, entries: list[list[str]], claims: Sequence[tuple[str, str]] = (), *, keep: bool = False
    ) -> None:
        """Commit changes (kind, time, data each) and free the claims given, and the lock unless ``keep``;
        on any failure the local copy (already changed) is rebuilt before its next use."""
        keys = [self.keys.lock, self.keys.log, *(key for key, _ in claims)]
        args: list[str | int] = [self.token, self.cursor, LOCK_MS if keep else 0, len(claims)]
        args += [value for _, value in claims]
        args += [part for entry in entries for part in entry]
        started = time.monotonic()
        self._lock_until = 0.0
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
        if keep:
            self._lock_until = started + LOCK_MS / 2000

    async def _release_claims(self, claims: list[tuple[str, str]]) -> None:
        if claims:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[key for key, _ in claims], args=[value for _, value in claims])

    async def _unlock(self, claims: list[tuple[str, str]] | None = None) -> None:
        """Free the write lock (and claims); a failure is harmless: the lock expires, claims too."""
        self._lock_until = 0.0
        held = [(self.keys.lock, self.token), *(claims or [])]
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[key for key, _ in held], args=[value for _, value in held])

    async def _apply(self, entry_id: str, fields: dict[str, str]) -> None:
        kind, when, data = fields["k"], float(fields["t"]), fields["d"]
        resets = False
        with self.shared_clock.at(when):
            if kind == "op":
                op = decode_op(data)
                perform = self._replayers.get(op.dialect)
                if perform is not None:
                    with contextlib.suppress(DomainError):  # a refused request that left a tombstone
                        perform(op)
            elif kind == "genesis":
                self.sim.execute(Command("scenario", jsonio.loads(data)))
                resets = True
            elif kind == "cmd":
                entry = jsonio.loads(data)
                resets = entry["name"] in RESETS
                try:
                    self.sim.execute(Command(entry["name"], entry["args"]))
                except Exception:  # it succeeded where it was made: the same command on the same state cannot fail
                    log.exception("replaying the command %s failed", entry["name"])
        self._restart_counters(entry_id, resets)
        self.cursor = entry_id

    def _prune_before(self, entry_id: str, *, everything: bool) -> None:
        """A reset makes every request and player change before it unreachable; a new scenario, every
        entry before it. They are deleted in the background (a replica still reading them meanwhile just
        finds fewer: what they did is undone by the reset anyway). Rule changes before a reset stay."""
        if self._pruner is not None and not self._pruner.done():
            self._pruner.cancel()
        self._pruner = asyncio.get_running_loop().create_task(self._prune(entry_id, everything))

    async def _prune(self, entry_id: str, everything: bool) -> None:
        try:
            if everything:
                await self.redis.xtrim(self.keys.log, minid=entry_id, approximate=False)
                return
            start = "-"
            while True:
                chunk = cast(
                    list[tuple[str, dict[str, str]]],
                    await self.redis.xrange(self.keys.log, start, "(" + entry_id, count=PRUNE_CHUNK),
                )
                if not chunk:
                    return
                gone = [eid for eid, fields in chunk if _unreachable(fields)]
                if gone:
                    await self.redis.xdel(self.keys.log, *gone)
                start = "(" + chunk[-1][0]
                await asyncio.sleep(0)  # let requests through between chunks
        except (RedisError, OSError):  # the next reset prunes what this one left
            log.warning("pruning the log before %s stopped: the store did not answer", entry_id)

    def _restart_counters(self, entry_id: str, every_rule: bool) -> None:
        """Give fresh counters to the rules an entry added (or, for a reset or new scenario, to all). The
        key names the entry and the rule's position then, the same on every replica, and stays the rule's
        while other rules come and go."""
        for index, rule in enumerate(self.sim.engine.rules):
            if every_rule or rule not in self._generations:
                self._generations[rule] = f"{entry_id}:{index}"

    def _counter(self, rule: Rule) -> str:
        return self.keys.rule + self._generations.get(rule, f"unlogged:{id(rule)}")

    async def refresh_counters(self) -> None:
        """Copy the shared rule counters onto the local rules (what the control API reports)."""
        rules = list(self.sim.engine.rules)
        if not rules:
            return
        pipe = self.redis.pipeline(transaction=False)
        for rule in rules:
            pipe.hmget(self._counter(rule), "seen", "hits")
        for rule, (seen, hits) in zip(rules, await pipe.execute(), strict=True):
            rule.seen, rule.hits = int(seen or 0), int(hits or 0)

    # the control API

    async def refresh(self) -> None:
        """Before a control read: the ledger, the rule counters and the journal as every replica left them."""
        with _store_errors():
            await self.sync()
            await self.refresh_counters()
            await self.journal_link.pull()

    async def command(self, command: Command) -> Any:
        """A domain command: made under the write lock after catching up, then logged, so that every
        replica makes it too (replayed by :meth:`_apply`, the same ``Simulator.execute``)."""
        async with self._local:
            with _store_errors():
                await self._lock_and_catch_up()
            committed = False
            try:
                when = self.shared_clock.base()
                with self.shared_clock.at(when):
                    try:
                        result = self.sim.execute(command)
                    except SimulatorError:
                        raise  # a refusal: nothing was changed
                    except Exception:
                        self.dirty = True  # a bug half-way: rebuild the local copy from the log
                        raise
                entry = jsonio.dumps({"name": command.name, "args": command.args})
                await self._append([["cmd", repr(when), entry]])
                committed = True
                if command.name in CLEARS_JOURNAL:  # every replica's journal
                    with contextlib.suppress(RedisError, OSError):
                        await self.journal_link.clear()
                self._restart_counters(self.cursor, command.name in RESETS)
                if command.name in RESETS:
                    self._prune_before(self.cursor, everything=command.name == "scenario")
                return result
            finally:
                if not committed:
                    await self._unlock()


def _unreachable(fields: dict[str, str]) -> bool:
    """An entry a later reset undoes: a request, a player change, an adjustment, an earlier reset."""
    if fields.get("k") == "op":
        return True
    return fields.get("k") == "cmd" and jsonio.loads(fields["d"])["name"] in ("player", "adjust", "reset")


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
    """A pooled client that retries a command once on a fresh connection when its pooled one turns out
    dead (a restarted Redis): every script here is a compare-and-set, so a retry never applies twice.
    On a Redis Cluster, redis-py's cluster client: every key here carries the ``{prefix}`` hash tag, so
    one script's keys are always in one slot."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": LOCK_WAIT,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [ConnectionError],
    }
    if where.nodes:
        parts = urllib.parse.urlsplit(where.url)
        nodes = [ClusterNode(host, port) for host, port in where.nodes]
        cluster = RedisCluster(
            startup_nodes=nodes,
            password=parts.password,
            username=parts.username or None,
            ssl=parts.scheme == "rediss",
            **options,
        )
        return cast(aioredis.Redis, cluster)  # the same commands, routed by slot
    return aioredis.Redis.from_url(where.url, **options)


async def ping(where: StoreURL) -> None:
    client = _client(where)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + 1):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreError(f"cannot reach the store {where.shown}: {exc}") from None
    finally:
        await client.aclose()


async def connect(settings: Settings, where: StoreURL) -> tuple[RedisStore, Settings]:
    """Connect and share one XPro token secret (the log is started by ``RedisStore.open``)."""
    await ping(where)
    client = _client(where)
    keys = Keys(where.prefix)
    try:
        if not settings.xpro.token_secret_given:  # random per process: the first replica's is everyone's
            await client.set(keys.token_secret, settings.xpro.token_secret, nx=True)
            secret = str(await client.get(keys.token_secret))
            settings = dataclasses.replace(settings, xpro=dataclasses.replace(settings.xpro, token_secret=secret))
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreError(f"cannot use the store {where.shown}: {exc}") from None
    return RedisStore(client, where), settings
