"""The shared store: stateless replicas (``--workers``, several hosts) on one Redis server or Redis Cluster.

Design. The wallet state lives in Redis; a replica keeps no copy of the ledger, so its memory does not grow
with the ledger and it is ready as soon as it has read the (small) configuration log.

- **Per request, a working set.** A request reads the keys its operation names (the player, the
  transaction id, the round, the tombstones, the session; :mod:`simulator.store.working`), in the same
  round trip as its nonce and in-flight claim. The dialect's own synchronous ``perform`` runs on those keys
  (a key it reads that was not loaded is loaded and the request run again), then ONE script commits what
  it wrote if nothing it read has changed (each value compared, a player's text carrying its version).
  On a conflict the request is run again on fresh values. The money rules are written once, in Python,
  and shared with the memory store.
- **One hash slot per tenant.** Every key of a request carries the hash tag ``{prefix:dialect:tenant}``:
  on a Redis Cluster a request's keys share a slot (so one script reads and writes them all) and tenants
  spread over the nodes. Transaction ids are unique per tenant (XPro's agent, Fizzy's brand), so that
  uniqueness is checked inside one slot; players never wait for each other, only two requests on the
  same keys conflict.
- **Epochs.** Ledger keys carry the store's epoch: a reset (or a new scenario) writes the scenario's
  players under a new epoch and then publishes it, which makes everything before it unreachable at once;
  the old keys are deleted in the background.
- **The configuration log.** A small stream holds what every replica must apply in the same order: the
  scenario (genesis), rule changes, resets and journal clears (each appended only if the log still ends
  where this replica read it). Rule counters are shared keys (one script decides which rule fires and
  counts it), XPro nonces ``SET NX EX``, the token secret one key.
- **Retention.** Each tenant's transactions are listed oldest first; past ``server.max_transactions`` per
  tenant (or older than ``server.transaction_retention``) the oldest rows are dropped by a background
  trim, each replaced by a marker that lives ``server.id_retention`` (a retry of the id is a duplicate),
  its effect carried on its player.
- **Data loss.** An identity key is drawn when the log starts: a replica that finds it changed (Redis
  restarted without persistence, FLUSHALL) says so in its health, starts the log again from its scenario,
  and serves the same state as every other replica.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import heapq
import itertools
import logging
import math
import random
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError, ResponseError

from simulator import jsonio
from simulator.config import Settings
from simulator.errors import AuthFailed, DomainError, InternalError, LedgerFull, SimulatorError, TransactionPending
from simulator.journal import Entry
from simulator.ledger import Player, Transaction
from simulator.ledger.core import REVERSALS, Tombstone
from simulator.ledger.store import Books
from simulator.operations import Operation
from simulator.scenarios.engine import Decision, Engine
from simulator.scenarios.model import Rule, Scenario
from simulator.store.base import (
    BadCursor,
    Command,
    Host,
    Page,
    Perform,
    Rerun,
    Store,
    StoreError,
    StoreUnavailable,
    StoreURL,
    page_of,
    scenario_files,
)
from simulator.store.journal import JournalLink
from simulator.store.lane import Lane
from simulator.store.working import (
    GONE,
    Key,
    Miss,
    Row,
    WorkingLedger,
    player_from_text,
    player_text,
    row_from_text,
    stone_from_text,
)

log = logging.getLogger("simulator.store")

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
# An in-flight claim lives server.request_timeout at most: a claim orphaned by a killed replica or an outage
# answers "pending" no longer than that (a claim outlived by a long injected delay costs nothing but the
# "pending" answer: the compare-and-set refuses a second apply).
RETRIES = 100  # conflicts on one request before it is answered with the internal error (never seen)
LOADS = 8  # rounds of loading missing keys for one run, at most
TRIM_BATCH = 64  # rows dropped by retention per trim step
SWEEP_CHUNK = 500
TAGS = 1024  # tenants' key tags kept ready
NAMES = 8192  # working-set keys' Redis names kept ready (a request names its keys two or three times)
KNOWN = 10_000  # stored texts this replica last committed or read, kept to guess a hot player's keys with
CONTENDED = 1.0  # seconds a player whose guessed keys another replica had changed is read ahead again
RESETS = ("reset", "scenario")
CLEARS_JOURNAL = ("reset", "scenario", "journal_clear")
LEDGER_COMMANDS = ("player", "adjust")
ABSENT = "\x00"  # in a compare-and-set: the key must not exist

# KEYS: log, identity, tail; ARGV: time, genesis data, a new identity. Starts the log (with its identity)
# if it is empty; returns {identity, 1 if this call started it}. The tail key names the log's last entry:
# a guessed commit reads it with the keys it checks (the stream's last entry, read in a script, cost a
# request 25 us of Redis CPU).
GENESIS = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[3], redis.call('XADD', KEYS[1], '*', 'k', 'genesis', 't', ARGV[1], 'd', ARGV[2]))
  redis.call('SET', KEYS[2], ARGV[3])
  return {ARGV[3], 1}
end
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return {redis.call('GET', KEYS[2]), 0}
"""
# KEYS: log, tail. Names the log's last entry in the tail key if it is missing (a log started before the
# tail key was kept).
TAIL = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then redis.call('SET', KEYS[2], last[1][1]) end
end
return 0
"""
# KEYS: log, tail; ARGV: the log's tail as this replica knows it, kind, time, data. Appends only after that
# tail, and names the new entry in the tail key.
APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local tail = '0-0'
if #last > 0 then tail = last[1][1] end
if tail ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 't', ARGV[3], 'd', ARGV[4])
redis.call('SET', KEYS[2], id)
return id
"""
# The commit of one working set, all keys in one slot.
# KEYS: seq, order, the tenant's tombstones, claim, tombstones forgotten, an XPro nonce, the store's identity
# and log tail (these three only for a request that skipped admit, on one server; else three of the slot's
# keys again), then the checked keys, the written keys, (row, history) per new row, the lists to push to,
# then (list, its cut counter) per member to remove.
# ARGV: #checks, #writes, #new rows, #pushes, claim value ('' none), #removals, the most tombstones kept (0:
# no bound, or no tombstone pushed by this commit, so no trim to check), the store's identity and the log's
# tail as the replica knows them ('' '': not checked), the nonce's lifetime in seconds ('': no nonce), then
# the expected values (ABSENT: none), (value, ttl ms) per write (value ABSENT: delete), each new row's text
# without its opening '{"seq":N,', the values pushed, the members removed.
# Returns {1, transactions kept in the tenant (0 if no new row), the last seq given}, {0} on a conflict, {-1}
# if the store's identity changed, {-2} if the log has entries the replica has not applied, {-3} if the nonce
# was already used (nothing written but {1}: the nonce is set only with the writes). The identity, the tail
# and the checked keys are read by one MGET, and the plain writes and new rows written by one MSET: each
# redis.call costs the script about as much as the command itself.
COMMIT = """
local C, W, R, U, D = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local got = redis.call('MGET', unpack(KEYS, 7, 8 + C))
if ARGV[8] ~= '' then
  if got[1] ~= ARGV[8] then return {-1} end
  if got[2] ~= ARGV[9] then return {-2} end
end
for i = 1, C do
  local v, want = got[i + 2], ARGV[10 + i]
  if v then
    if v ~= want then return {0} end
  elseif want ~= '\\0' then return {0} end
end
if ARGV[10] ~= '' and not redis.call('SET', KEYS[6], 1, 'NX', 'EX', ARGV[10]) then return {-3} end
local k, a = 9 + C, 11 + C
local sets = {}
for i = 1, W do
  local v, ttl = ARGV[a], tonumber(ARGV[a + 1])
  if v == '\\0' then redis.call('DEL', KEYS[k])
  elseif ttl > 0 then redis.call('SET', KEYS[k], v, 'PX', ttl)
  else
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = v
  end
  k = k + 1
  a = a + 2
end
local seq, kept = 0, 0
if R > 0 then
  seq = redis.call('INCRBY', KEYS[1], R) - R
  local rows = {}
  for i = 1, R do
    seq = seq + 1
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = '{"seq":' .. seq .. ',' .. ARGV[a]
    redis.call('RPUSH', KEYS[k + 1], KEYS[k])
    rows[i] = KEYS[k]
    k = k + 2
    a = a + 1
  end
  kept = redis.call('RPUSH', KEYS[2], unpack(rows))
end
if #sets > 0 then redis.call('MSET', unpack(sets)) end
for i = 1, U do
  redis.call('RPUSH', KEYS[k], ARGV[a])
  k = k + 1
  a = a + 1
end
for i = 1, D do
  local n = redis.call('LREM', KEYS[k], 1, ARGV[a])
  if n > 0 then redis.call('INCRBY', KEYS[k + 1], n) end
  k = k + 2
  a = a + 1
end
local most = tonumber(ARGV[7])
if most > 0 then
  while redis.call('LLEN', KEYS[3]) > most do
    redis.call('DEL', redis.call('LPOP', KEYS[3]))
    redis.call('INCR', KEYS[5])
  end
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
return {1, kept, seq}
"""
# KEYS: a list, the count of entries ever removed from its front (its cut); ARGV: an end (exclusive) counted
# from the list's first entry ever (so positions hold while retention drops from the front; -1: the list's
# end), how many entries at most. Returns {the position of the first entry returned, the entries before the
# end}: the control reads page by these positions.
WINDOW = """
local cut = tonumber(redis.call('GET', KEYS[2]) or '0')
local len = redis.call('LLEN', KEYS[1])
local stop = len
if tonumber(ARGV[1]) >= 0 then stop = math.min(tonumber(ARGV[1]) - cut, len) end
if stop <= 0 then return {cut, {}} end
local start = math.max(stop - tonumber(ARGV[2]), 0)
return {start + cut, redis.call('LRANGE', KEYS[1], start, stop - 1)}
"""
# KEYS: the claims to free; ARGV: the value each must still hold (else it is someone else's)
RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then redis.call('DEL', key) end
end
return 0
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

_ESCAPE = str.maketrans({"%": "%25", ":": "%3A", "{": "%7B", "}": "%7D"})


def _esc(text: str) -> str:
    if "%" in text or ":" in text or "{" in text or "}" in text:
        return text.translate(_ESCAPE)
    return text  # most names need no escape: four scans in C are cheaper than a translation


def _unesc(text: str) -> str:
    return urllib.parse.unquote(text)


class _EpochNames:
    """Names made for one epoch, kept ready: forgotten when the epoch changes, and all at once when
    ``bound`` are kept (what they are named after comes from requests)."""

    __slots__ = ("bound", "epoch", "names")

    def __init__(self, bound: int) -> None:
        self.bound, self.epoch = bound, -1
        self.names: dict[Any, Any] = {}

    def at(self, epoch: int) -> dict[Any, Any]:
        """The names kept for ``epoch``, with room for one more."""
        if epoch != self.epoch:
            self.names.clear()
            self.epoch = epoch
        elif len(self.names) >= self.bound:
            self.names.clear()
        return self.names


class Keys:
    """Where everything is (docs/replicas.md has the table)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        base = "{" + prefix + "}:"  # the store-wide keys: one slot
        self.log = base + "log"
        self.tail = base + "tail"  # the id of the log's last entry (set by the scripts that append)
        self.token_secret = base + "token-secret"
        self.nonce = base + "nonce:"
        self.rule = base + "rule:"
        self.journal = base + "journal"
        self.identity = base + "identity"  # drawn when the log starts: gone or changed = the data was lost
        self.epoch = base + "epoch"
        self.tenants = base + "tenants"  # "dialect:tenant" of every tenant that has had a player
        self._tags: dict[tuple[str, str], str] = {}  # (dialect, tenant) -> tag, as many as TAGS at most
        self._names = _EpochNames(NAMES)  # working-set key -> its Redis name
        self._tenants = _EpochNames(TAGS)  # (dialect, tenant) -> the names its commits pass (tenant())

    def player_count(self, epoch: int) -> str:
        """Players in the store (all tenants): taken before a commit that creates one (server.max_players)."""
        return "{" + self.prefix + "}:" + f"{epoch}:players"

    def tag(self, dialect: str, tenant: str) -> str:
        tag = self._tags.get((dialect, tenant))
        if tag is None:
            if len(self._tags) >= TAGS:  # tenants come from requests: the cache stays bounded
                self._tags.clear()
            tag = self._tags[(dialect, tenant)] = "{" + self.prefix + ":" + _esc(dialect) + ":" + _esc(tenant) + "}:"
        return tag

    def of(self, key: Key, epoch: int) -> str:
        """The Redis key of a working-set key (remembered: the read-ahead, a load and the commit all name the
        same keys; keys come from requests, so at most NAMES are kept)."""
        memo = self._names
        if memo.epoch == epoch:  # a request names a dozen keys, most of them kept: no call for those
            name: str | None = memo.names.get(key)
            if name is not None:
                return name
        names = memo.at(epoch)
        name = names[key] = self._name(key, epoch)
        return name

    def _name(self, key: Key, epoch: int) -> str:
        rest = ":".join(key[3:])
        # one check of the joined names instead of one a name (a request names about a dozen keys): only a
        # name holding % { } or : needs escaping, and a : in a name shows as one more than the joins made
        if "%" in rest or "{" in rest or "}" in rest or rest.count(":") != len(key) - 4:
            rest = ":".join(map(_esc, key[3:]))
        return f"{self.tag(key[1], key[2])}{epoch}:{key[0]}:{rest}"

    def tenant(self, dialect: str, tenant: str, epoch: int) -> tuple[str, str, str, str, str]:
        """The names every commit of a tenant passes: seq, order, stones, forgotten, players (kept ready
        with the tags, as many)."""
        kept = self._tenants.at(epoch)
        names: tuple[str, str, str, str, str] | None = kept.get((dialect, tenant))
        if names is None:
            names = kept[(dialect, tenant)] = (
                self.seq(dialect, tenant),
                self.order(dialect, tenant, epoch),
                self.stones(dialect, tenant, epoch),
                self.forgotten(dialect, tenant, epoch),
                self.players(dialect, tenant, epoch),
            )
        return names

    def claim(self, dialect: str, tenant: str, scope: str, txn_id: str) -> str:
        return self.tag(dialect, tenant) + "c:" + _esc(scope) + ":" + _esc(txn_id)

    def seq(self, dialect: str, tenant: str) -> str:
        return self.tag(dialect, tenant) + "seq"

    def order(self, dialect: str, tenant: str, epoch: int) -> str:
        """The tenant's transaction rows, oldest first (retention drops from the front)."""
        return self.tag(dialect, tenant) + f"{epoch}:o"

    def players(self, dialect: str, tenant: str, epoch: int) -> str:
        """The tenant's player ids, in the order they were created."""
        return self.tag(dialect, tenant) + f"{epoch}:P"

    def stones(self, dialect: str, tenant: str, epoch: int) -> str:
        """The tenant's tombstones, oldest first (at most ``server.max_tombstones`` a tenant)."""
        return self.tag(dialect, tenant) + f"{epoch}:S"

    def forgotten(self, dialect: str, tenant: str, epoch: int) -> str:
        """Tombstones forgotten beyond that bound."""
        return self.tag(dialect, tenant) + f"{epoch}:Sf"

    def history(self, dialect: str, tenant: str, player: str, epoch: int) -> str:
        """One player's transaction rows, oldest first."""
        return self.tag(dialect, tenant) + f"{epoch}:h:" + _esc(player)

    @staticmethod
    def cut(listing: str) -> str:
        """How many entries retention has removed from the front of a list of rows (``order``, ``history``):
        a control read's cursor counts positions from the list's first entry ever, so pages do not shift
        when rows are dropped. (The tombstones' list counts its own in ``forgotten``.)"""
        return listing + ":cut"


def _predict(op: Operation) -> list[Key]:
    """The keys a request will most likely read: loaded with its claim, in one round trip."""
    d, t = op.dialect, op.agent or ""
    keys: list[Key] = []
    if op.player is not None:
        keys.append(("p", d, t, op.player))
        if op.round is not None:
            keys += [("r", d, t, op.player, op.round), ("s", d, t, "round", op.player, op.round)]
    if op.transaction is not None:
        keys += [("t", d, t, op.scope, op.transaction), ("s", d, t, "txn", op.scope, op.transaction)]
    session = op.params.get("session")  # a dialect that binds sessions to players names it here (Fizzy)
    if isinstance(session, str):
        keys.append(("x", d, t, session))
    return keys


Where = tuple[str, str, str]  # (dialect, tenant, player)


def _replayed() -> AuthFailed:
    """An XPro nonce another replica saw first (the shared key was set): at the read-ahead, at a rule's
    decision or at a guessed request's commit."""
    return AuthFailed("x-nonce was already used (replay, seen by another replica)")


def _where(op: Operation) -> Where:
    return (op.dialect, op.agent or "", op.player or "")


class _Turn:
    """One player's turn in this replica: requests on it run one at a time (they would only conflict).
    ``users``: the requests that refer to it (in flight, or holding a read-ahead); ``commits``: those made
    here, so a read-ahead taken before one is read again."""

    __slots__ = ("commits", "lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.commits = 0


class _Moved(Exception):
    """The commit of a request that skipped admit() found the store's identity or its log changed."""


class _Holding:
    """What admit() took for a request, given back when the pipeline is done with it, whether or not it
    reached perform(): the keys it read ahead, and its claim (released by the script that commits the
    request's writes, else here). A class, not a generator: it is entered on every request."""

    __slots__ = ("local", "op", "store", "taken")

    def __init__(self, store: RedisStore, op: Operation) -> None:
        self.store, self.op = store, op
        self.taken = store._held.get(id(op))
        self.local: contextlib.AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        if self.taken is None:
            return
        dialect, tenant, scope, txn_id = self.taken[0]
        local = self.store.sim.ledger.claim(dialect, tenant, txn_id, scope)  # what ``in_flight`` reports here
        try:
            local.__enter__()
        except BaseException:
            await self.store._give_back(self.op, self.taken)
            raise
        self.local = local

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.taken is None:  # no claim (a guessed request, a read): only the read-ahead to give back
            self.store._unload(self.op)
            return
        try:
            if self.local is not None:
                self.local.__exit__(kind, exc, tb)
        finally:
            await self.store._give_back(self.op, self.taken)


class RedisStore(Store):
    """The stateless shared store (see the module docstring); given to a Simulator like any store."""

    kind = "redis"
    sim: Host

    def __init__(self, client: aioredis.Redis, where: StoreURL) -> None:
        self.redis = client
        self.where = where
        self.shown = where.shown
        self.keys = Keys(where.prefix)
        self.cursor = "0-0"  # the last configuration entry applied here
        self.epoch = 0
        self.identity = ""  # the store's identity key when this replica loaded it
        self.lost = 0  # times the store was found to have lost its data
        self.lost_at: float | None = None
        self.dirty = True  # the configuration must be rebuilt from the log before it is used
        self.conflicts = 0  # working sets run again because another request changed what they read
        self.token = secrets.token_hex(8)
        self._claims = itertools.count()  # a claim's value: this replica's token and a number, never reused
        self._local = asyncio.Lock()  # one configuration change at a time in this process
        self._generations: dict[Rule, str] = {}  # rule -> the log entry that (re)started its counters
        self._held: dict[int, tuple[tuple[str, str, str, str], tuple[str, str]]] = {}  # id(op) -> its claim
        self._turns: dict[Where, _Turn] = {}  # the players requests are in flight for, here
        self._released: set[tuple[str, str]] = set()  # claims (key, value) a commit released with its writes
        # id(op) -> (epoch, keys read at admit, the player's commits here then): the request's read-ahead
        self._loaded: dict[int, tuple[int, dict[Key, str | None], int]] = {}
        # key -> its stored text as this replica last committed or read it (in ``_known_epoch``), KNOWN at
        # most: a request on a player found here skips admit's round trip and runs on these texts, the
        # keys not found here taken as absent; its commit checks all of them (see admit())
        self._known: dict[Key, str] = {}
        self._known_epoch = -1
        self._guessed: set[int] = set()  # id(op) of the requests admitted that way
        self._nonces: dict[int, str] = {}  # id(op) -> the XPro nonce key a guessed request's commit sets
        self._contended: dict[Key, float] = {}  # player key -> until when it is read ahead, not guessed
        self.missed_guesses = 0  # guessed working sets found stale by their commit (then read and run again)
        self._tenants: set[tuple[int, str, str]] = set()  # (epoch, dialect, tenant) registered from here
        self._trims: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._trimmed_at: dict[tuple[str, str], float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._append = client.register_script(APPEND)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._genesis = client.register_script(GENESIS)
        self._tail = client.register_script(TAIL)
        self._decide = client.register_script(DECIDE)
        self._window = client.register_script(WINDOW)
        # the request path's commands, batched over one connection with other requests' (one server; a
        # Cluster routes each command by its slot through redis-py's cluster client)
        self.lane = None if where.nodes else Lane(client.connection_pool, COMMAND_TIMEOUT)

    async def _batch(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies to ``commands``, sent together (an error reply raises, as a pipeline's does). On a
        Cluster, redis-py shapes some replies (``SET`` answers True, not ``OK``; see :func:`_entries`)."""
        if self.lane is not None:
            return await self.lane.execute(commands)
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()  # an error reply raises

    async def _script(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """Run a registered script (loaded into the server's cache on first use)."""
        if self.lane is None:
            return await script(keys=keys, args=args)
        (reply,) = await self.lane.call([("EVALSHA", script.sha, len(keys), *keys, *args)])
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            (reply,) = await self.lane.call([("EVAL", script.script, len(keys), *keys, *args)])  # caches it
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _get(self, name: str) -> str | None:
        return cast("str | None", await self.redis.get(name))  # the client decodes answers

    async def _mget(self, names: list[str]) -> list[str | None]:
        if not names:  # MGET needs a key (a cluster client cannot even route it)
            return []
        if self.lane is not None:
            return cast("list[str | None]", (await self._batch([("MGET", *names)]))[0])
        return cast("list[str | None]", await self.redis.mget(names))

    async def _lrange(self, name: str, start: int, end: int) -> list[str]:
        return cast("list[str]", await self.redis.lrange(name, start, end))

    def bind(self, sim: Host) -> None:
        self.sim = sim
        self.journal_link = JournalLink(self.redis, self.keys.journal, sim.journal, self.token, self.lane)

    async def open(self) -> None:
        """Start the log with this replica's scenario if it is empty, then read the configuration."""
        with _store_errors():
            if not await self._start_log():
                log.info("joining the shared state at %s", self.where.shown)
            await self.sync()
            await self.journal_link.pull()
        self.journal_link.start()

    async def close(self) -> None:
        if self._sweeper is not None:  # a sweep of earlier epochs is let finish (bounded)
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self._sweeper, 10)
        tasks = list(self._trims.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await task
        await self.journal_link.stop()
        if self.lane is not None:
            await self.lane.close()
        await self.redis.aclose()

    def record(self, entry: Entry) -> None:
        self.journal_link.publish(entry)

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"kind": "redis", "url": self.where.shown, "epoch": self.epoch}
        # since this replica started: working sets run again because another request changed what they read,
        # and guessed ones found stale by their commit (a player another replica serves too)
        health["conflicts"], health["missed_guesses"] = self.conflicts, self.missed_guesses
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
        (``SET NX PX``), the store's identity, the configuration entries other replicas appended, and the
        keys the request will read."""
        d, t = op.dialect, op.agent or ""
        nonce = f"{self.keys.nonce}{op.agent}:{op.params['nonce']}" if "nonce" in op.params and op.agent else None
        # a status check asks whether another replica holds the transaction in flight (XPro answers 35 then)
        checks = op.operation == "check" and bool(op.transaction)
        if (
            not checks
            and self.lane is not None
            and not self.dirty
            and op.player is not None
            and self._known_epoch == self.epoch
            and (player := ("p", d, t, op.player)) in self._known
            and not (self.sim.engine.rules and any(rule.match.holds(op) for rule in self.sim.engine.rules))
            and not (self._contended and self._is_contended(player))
        ):
            # a player this replica served last, no rule to decide: no round trip here, and no claim (a
            # duplicate on another replica is refused by the compare-and-set, then replayed); the commit checks
            # what was guessed, the store's identity and the configuration log's tail, and sets the nonce
            self._guessed.add(id(op))
            if nonce is not None:
                self._nonces[id(op)] = nonce
            return None
        claim = (d, t, op.scope, op.transaction) if op.mutating and op.transaction else None
        held = (self.keys.claim(*claim), f"{self.token}.{next(self._claims)}") if claim else None
        asked = self.keys.claim(d, t, op.scope, op.transaction or "") if checks else None
        predicted = _predict(op)
        epoch = self.epoch
        try:
            with _store_errors():
                if self.dirty:
                    await self.sync()
                    epoch = self.epoch
                commands: list[tuple[Any, ...]] = []
                if nonce is not None:
                    commands.append(("SET", nonce, 1, "NX", "EX", self._nonce_ttl()))
                if held is not None:
                    ttl = int(self.sim.settings.server.request_timeout * 1000)
                    commands.append(("SET", held[0], held[1], "NX", "PX", ttl))
                if asked is not None:
                    commands.append(("EXISTS", asked))
                if predicted and not self.where.nodes:  # a cluster pipeline has no MGET: read after it
                    commands.append(("MGET", *[self.keys.of(k, epoch) for k in predicted]))
                commands.append(("GET", self.keys.identity))
                commands.append(("XRANGE", self.keys.log, self._after(), "+"))
                *taken, identity, entries = await self._batch(commands)
                if predicted and not self.where.nodes:
                    values = taken.pop()
                    turn = self._enter(_where(op))  # kept until perform() or _give_back gives the read-ahead back
                    self._loaded[id(op)] = (epoch, dict(zip(predicted, values, strict=True)), turn.commits)
                if asked is not None:
                    op.params["in_flight"] = bool(taken.pop())
                if identity != self.identity:
                    await self._lost()
                elif entries:
                    await self._catch_up(_entries(entries))
        except DomainError as err:
            self._unload(op)
            return err
        if nonce is not None and not taken.pop(0):
            self._unload(op)
            if held is not None and taken[0]:
                await self._free(held)
            return _replayed()
        if held is not None and claim is not None:
            if not taken[0]:
                self._unload(op)
                return TransactionPending(f"transaction {claim[3]!r} is still being processed")
            self._held[id(op)] = (claim, held)
        return None

    def _nonce_ttl(self) -> int:
        """Seconds a shared nonce key lives: as long as any replica keeps a nonce locally, twice the skew (a
        timestamp up to the skew in the future stays acceptable until the skew has passed after it)."""
        return max(1, math.ceil(2 * self.sim.settings.xpro.timestamp_skew))

    def claim(self, op: Operation) -> contextlib.AbstractAsyncContextManager[object]:
        return _Holding(self, op)

    async def _give_back(self, op: Operation, taken: tuple[tuple[str, str, str, str], tuple[str, str]] | None) -> None:
        """Give back what admit() took for ``op`` (see :class:`_Holding`)."""
        self._unload(op)
        if taken is None:
            return
        del self._held[id(op)]
        held = taken[1]
        if held in self._released:
            self._released.discard(held)
        else:
            await self._free(held)

    async def _free(self, held: tuple[str, str]) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._script(self._release, [held[0]], [held[1]])

    async def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        with _store_errors():
            return bool(await self.redis.exists(self.keys.claim(dialect, tenant, scope, txn_id)))

    async def decide(self, op: Operation) -> Decision | None:
        rules = self.sim.engine.rules
        if not rules:
            return None
        with _store_errors():  # the log was read by admit(), in the same round trip as the claim
            candidates = [rule for rule in rules if rule.match.holds(op)]
            if not candidates:
                return None
            # a rule came (another request caught up with the log) after admit() found none and let the
            # request skip its round trip: it is read, not guessed, so it is never decided twice (Rerun); its
            # nonce, which its commit would have set, is set before the rule is counted, as admit() does
            self._guessed.discard(id(op))
            nonce = self._nonces.pop(id(op), None)
            if nonce is not None and not await self.redis.set(nonce, 1, nx=True, ex=self._nonce_ttl()):
                raise _replayed()
            keys, args = [], []
            for rule in candidates:
                m = rule.match
                keys.append(self._counter(rule))
                args += [_opt(rule.times), _opt(m.nth), _opt(m.after), _opt(m.probability), rule.rng_seed]
            index, seen = await self._script(self._decide, keys, args)
        if not index:
            return None
        rule = candidates[int(index) - 1]
        rule.rng = random.Random(f"{rule.rng_seed}:{seen}")  # the delay drawn the same on every replica
        return Engine._decision(rule)

    async def perform(self, op: Operation, perform: Perform) -> dict[str, Any]:
        """Run the dialect's money rules on the request's working set and commit what they wrote."""
        epoch, data, since = self._loaded.get(id(op), (-1, {}, 0))
        if epoch != self.epoch:  # read before a reset: read again
            data = {}
        taken = self._held.get(id(op))
        held = taken[1] if taken is not None else None
        guess = id(op) in self._guessed
        nonce = self._nonces.get(id(op)) if guess else None
        try:
            first = [] if data else _predict(op)  # what to read (or guess) if nothing was read ahead
            result: dict[str, Any] = await self._run(
                _where(op), first, lambda: perform(op), data, held, since, guess, nonce
            )
        finally:
            self._unload(op)
        return result

    def _unload(self, op: Operation) -> None:
        """Give back the request's read-ahead (and its reference to the player's turn)."""
        self._guessed.discard(id(op))
        if self._nonces:
            self._nonces.pop(id(op), None)
        if self._loaded.pop(id(op), None) is not None:
            self._leave(_where(op))

    async def _run(
        self,
        where: Where,
        first: list[Key],
        body: Any,
        data: dict[Key, str | None],
        held: tuple[str, str] | None = None,
        since: int = 0,
        guess: bool = False,
        nonce: str | None = None,
    ) -> Any:
        """Run ``body`` (which reads and writes ``self.sim.ledger``) on a working set until its commit holds;
        a domain error it raises is committed too (a tombstone, a refusal count) and then raised.
        ``where``: (dialect, tenant, player). Requests on one player take turns in this replica (they would
        only conflict), so only requests of different replicas ever run again; other players never wait.
        ``since``: the player's commits here when ``data`` was read (if one came since, it is read again).
        ``guess``: admit() was skipped (see there): run first on what this replica knows of ``first``, and
        have every outcome checked by the commit script, with the store's identity and the log's tail; the
        commit sets ``nonce`` (an XPro nonce key), or answers that it was used."""
        turn = self._enter(where)
        try:
            async with turn.lock:
                if data and turn.commits != since:  # this player changed here after the read-ahead
                    first, data = list(data), {}
                skipped = guess
                if guess:
                    data = self._guess(first)
                    guess = bool(data)
                return await self._attempts(where, turn, first, body, data, held, guess, skipped, nonce)
        finally:
            self._leave(where)

    async def _attempts(
        self,
        where: Where,
        turn: _Turn,
        first: list[Key],
        body: Any,
        data: dict[Key, str | None],
        held: Any,
        guess: bool = False,
        skipped: bool = False,
        nonce: str | None = None,
    ) -> Any:
        """``guess``: ``data`` is guessed; ``skipped``: admit()'s round trip was skipped, so every outcome,
        even one that writes nothing, goes through the commit script and its identity and log checks (and
        sets ``nonce``)."""
        dialect, tenant, _ = where
        for attempt in range(RETRIES):
            epoch = self.epoch
            if not data:
                data, guess = await self._load(first, epoch), False
            tried = self._try(body, data)
            loads = 0
            while isinstance(tried, Miss):  # load what it lacked, and run it again from the start
                loads += 1
                if loads >= LOADS:
                    raise InternalError(f"a request read more than {LOADS} rounds of keys")
                data.update(await self._load(tried.keys, epoch))
                tried = self._try(body, data)
            ws, result, error = tried
            writes, new, created = ws.diff()
            # the working set goes before the commit's round trip: objects alive across an await are what the
            # cyclic collector walks again and again with dozens of requests in flight
            del ws
            try:
                # nothing to commit: an answer from read keys stands; one from guessed keys is checked first
                if (not writes and not new and not skipped) or await self._write(
                    dialect, tenant, epoch, data, writes, new, created, held, check=skipped, nonce=nonce
                ):
                    if writes or new:
                        turn.commits += 1
                    if error is not None:
                        raise error
                    return result
            except _Moved:
                self._forget(data)
                with _store_errors():
                    await self.sync()  # the configuration (or the whole store) changed: decide again on it
                raise Rerun() from None
            self._forget(data)
            first, data = list(data), {}  # read again, at once, everything the last run read
            if guess:  # another replica serves this player too: read it ahead for a while
                self.missed_guesses += 1
                self._contend(("p", *where))
                guess = False
                continue
            self.conflicts += 1
            await asyncio.sleep(random.uniform(0, 0.0005 * min(attempt + 1, 20)))
        raise StoreUnavailable(f"the request conflicted with others {RETRIES} times; nothing applied")

    def _enter(self, where: Where) -> _Turn:
        """A reference to the player's turn here (made on first use)."""
        turn = self._turns.get(where)
        if turn is None:
            turn = self._turns[where] = _Turn()
        turn.users += 1
        return turn

    def _leave(self, where: Where) -> None:
        """Drop a reference: the turn goes with the last one, so only players in flight are kept."""
        turn = self._turns[where]
        turn.users -= 1
        if not turn.users:
            del self._turns[where]

    def _try(self, body: Any, data: dict[Key, str | None]) -> tuple[WorkingLedger, Any, DomainError | None] | Miss:
        """Run ``body`` once on a working set of ``data``: (the set, its result, the domain error it raised),
        or the :class:`Miss` of the keys it lacked. Not a coroutine: most runs need nothing loaded."""
        ws = WorkingLedger(self.sim.clock, self.sim.ledger, data)
        home, self.sim.ledger = self.sim.ledger, ws
        try:
            return ws, body(), None
        except Miss as miss:
            return miss
        except DomainError as exc:
            return ws, None, exc
        finally:
            self.sim.ledger = home

    def _guess(self, keys: list[Key]) -> dict[Key, str | None]:
        """``keys`` as this replica last committed or read them (those it does not know taken as absent);
        empty if it does not know the first (the player) any more."""
        known = self._known
        if self._known_epoch != self.epoch or not keys or keys[0] not in known:
            return {}
        return {key: known.get(key) for key in keys}

    def _remember(
        self, epoch: int, data: dict[Key, str | None], writes: dict[Key, str | None], rows: list[Any], seq: int
    ) -> None:
        """What a commit read and wrote, as now stored (the oldest known texts go first past KNOWN, an eighth
        at a time)."""
        known = self._known
        if epoch != self._known_epoch:
            known.clear()
            self._known_epoch = epoch
        # a key read as this replica knew it stays where it is (a text that changed goes last, as the newest)
        texts = [(key, text) for key, text in data.items() if key not in writes and known.get(key) != text]
        seq -= len(rows)
        for key, body in rows:
            seq += 1
            texts.append((key, f'{{"seq":{seq},{body}'))
        texts += writes.items()
        for key, text in texts:
            known.pop(key, None)
            if text is not None:
                if len(known) >= KNOWN:
                    # the oldest eighth at once: a dict finds its first entry by skipping the slots of the
                    # entries deleted before it, so dropping one at a time cost a scan per new key (8 us a
                    # request once full, on AMBSlot, whose every bet writes new keys)
                    for old in list(itertools.islice(known, KNOWN // 8)):
                        del known[old]
                known[key] = text

    def _is_contended(self, player: Key) -> bool:
        until = self._contended.get(player)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._contended[player]
        return False

    def _contend(self, player: Key) -> None:
        if len(self._contended) >= KNOWN:
            self._contended.clear()
        self._contended[player] = time.monotonic() + CONTENDED

    def _forget(self, keys: Any) -> None:
        for key in keys:
            self._known.pop(key, None)

    async def _load(self, keys: Any, epoch: int) -> dict[Key, str | None]:
        keys = list(dict.fromkeys(keys))
        with _store_errors():
            values = await self._mget([self.keys.of(k, epoch) for k in keys])
        return dict(zip(keys, values, strict=True))

    async def _write(
        self,
        dialect: str,
        tenant: str,
        epoch: int,
        data: dict[Key, str | None],
        writes: dict[Key, str | None],
        new: list[Row],
        created: dict[Key, str],
        held: tuple[str, str] | None = None,
        removals: Sequence[tuple[str, str]] = (),
        check: bool = False,
        nonce: str | None = None,
    ) -> bool:
        """The compare-and-set commit of one working set (and the release of its claim, ``held``: key and
        value): False if something it read has changed. ``removals``: (list, member) to remove from a list
        of rows, counted in its :meth:`Keys.cut`. ``check``:
        admit() was skipped, so the store's identity and the log's tail are checked too (raises
        :class:`_Moved` if either changed); only on one server, where a script may name any key. ``nonce``:
        an XPro nonce key to set with the writes (with ``check``; :class:`AuthFailed` if it was used)."""
        keys = self.keys
        for key in (*data, *writes):
            if key[1] != dialect or key[2] != tenant:
                raise InternalError(f"a request of {dialect}/{tenant} touched {key[1]}/{key[2]}")
        seq, order, stones_list, forgotten, players = keys.tenant(dialect, tenant, epoch)
        check = check and self.lane is not None
        nonce = nonce if check else None  # set only by a commit that checks (one server)
        names = [
            seq,
            order,
            stones_list,
            held[0] if held is not None else seq,
            forgotten,
            nonce if nonce is not None else seq,
            keys.identity if check else seq,
            keys.tail if check else seq,
        ]
        server = self.sim.settings.server
        ttl = str(int(server.id_retention * 1000))
        pushes = [(players, pid) for pid in created.values()]
        stones = [k for k in writes if k[0] == "s" and data.get(k) is None]
        if stones:
            pushes += [(stones_list, keys.of(k, epoch)) for k in stones]
        args: list[str] = [
            str(len(data)),
            str(len(writes)),
            str(len(new)),
            str(len(pushes)),
            held[1] if held is not None else "",
            str(len(removals)),
            str(max(server.max_tombstones, 0)) if stones else "0",  # only a tombstone pushed here can pass it
            self.identity if check else "",
            self.cursor if check else "",
            str(self._nonce_ttl()) if nonce is not None else "",
        ]
        for key, text in data.items():
            names.append(keys.of(key, epoch))
            args.append(ABSENT if text is None else text)
        for key, text in writes.items():
            names.append(keys.of(key, epoch))
            args += [ABSENT if text is None else text, ttl if key[0] == "s" or text == GONE else "0"]
        rows: list[tuple[Key, str]] = []
        for row in new:
            rkey: Key = ("t", dialect, tenant, row.scope, row.id if row.indexed else f"#{row.id}")
            body = row.body()
            names += [keys.of(rkey, epoch), keys.history(dialect, tenant, row.player, epoch)]
            rows.append((rkey, body))
            args.append(body)
        for name, value in pushes:
            names.append(name)
            args.append(value)
        for name, value in removals:
            names += [name, keys.cut(name)]
            args.append(value)
        counter = keys.player_count(epoch)
        with _store_errors():
            # a place for each new player is taken first, and given back if the commit fails
            if created and int(await self.redis.incrby(counter, len(created))) > server.max_players:
                await self.redis.decrby(counter, len(created))
                raise LedgerFull(
                    f"the ledger holds max_players ({server.max_players:,}) players: "
                    "POST /_sim/reset, or raise server.max_players"
                )
            committed = False
            try:
                answer = await self._script(self._commit, names, args)
                committed = int(answer[0]) == 1
            finally:
                if created and not committed:
                    with contextlib.suppress(RedisError, OSError):
                        await self.redis.decrby(counter, len(created))
        outcome = int(answer[0])
        if outcome == -3:
            raise _replayed()
        if outcome < 0:
            raise _Moved()
        if not outcome:
            return False
        if held is not None:
            self._released.add(held)
        if self.lane is not None:
            self._remember(epoch, data, writes, rows, int(answer[2]))
        if created and (epoch, dialect, tenant) not in self._tenants:
            with _store_errors():
                await self.redis.sadd(keys.tenants, f"{_esc(dialect)}:{_esc(tenant)}")
            self._tenants.add((epoch, dialect, tenant))
        if new and (trim := self._retain(dialect, tenant, int(answer[1]))) is not None:
            await asyncio.shield(trim)
        return True

    # retention

    def _retain(self, dialect: str, tenant: str, kept: int) -> asyncio.Task[None] | None:
        """Trim the tenant's oldest rows when they exceed the bounds: past the count bound the request that
        went past it waits for the trim (returned: so the bound holds when it answers, as in memory); the
        age bound is checked in the background, once a second."""
        server = self.sim.settings.server
        where = (dialect, tenant)
        over = kept > server.max_transactions
        if not over:
            if server.transaction_retention <= 0:
                return None
            now = time.monotonic()
            if now - self._trimmed_at.get(where, 0.0) < 1.0:
                return None
            self._trimmed_at[where] = now
        task = self._trims.get(where)
        if task is None or task.done():
            task = self._trims[where] = asyncio.get_running_loop().create_task(self._trim(dialect, tenant))
        return task if over else None

    async def _trim(self, dialect: str, tenant: str) -> None:
        """Drop the tenant's oldest rows beyond the bounds, each by a compare-and-set like any request: its
        effect is carried on its player, its id stays known as :data:`GONE` for ``id_retention``."""
        server = self.sim.settings.server
        try:
            while True:
                epoch = self.epoch
                order = self.keys.order(dialect, tenant, epoch)
                length = await self.redis.llen(order)
                heads = await self._lrange(order, 0, TRIM_BATCH - 1)
                if not heads:
                    return
                excess = length - server.max_transactions
                cutoff = time.time() - server.transaction_retention if server.transaction_retention > 0 else None
                dropped = 0
                for name in heads:
                    text = await self._get(name)
                    if excess <= 0:
                        if cutoff is None or text is None or text == GONE:
                            return
                        if float(jsonio.loads(text)["time"]) >= cutoff:
                            return
                    if not await self._drop(dialect, tenant, epoch, order, name, text):
                        break  # changed meanwhile: read the front again
                    excess -= 1
                    dropped += 1
                if not dropped:
                    await asyncio.sleep(0.001)
        except (RedisError, OSError, StoreUnavailable):
            log.warning("trimming %s/%s stopped: the store did not answer", dialect, tenant)

    async def _drop(self, dialect: str, tenant: str, epoch: int, order: str, name: str, text: str | None) -> bool:
        """Drop one row (``name``, read as ``text``) by a compare-and-set commit, like any request's: the row
        becomes :data:`GONE` (or goes, if ids are not remembered), its effect is carried on its player,
        and it leaves the tenant's order, its player's history and its round and referrer lists."""
        if text is None or text == GONE:
            return await self._unlist(dialect, tenant, epoch, order, name)
        row = row_from_text(dialect, tenant, text)
        pkey: Key = ("p", dialect, tenant, row.player)
        rkey: Key = ("t", dialect, tenant, row.scope, row.id if row.indexed else f"#{row.id}")
        fkey: Key = ("f", dialect, tenant, row.scope, row.id)
        lists = [fkey]
        if row.track_round and row.round is not None:
            lists.append(("r", dialect, tenant, row.player, row.round))
        data = await self._load([pkey, *lists], epoch)
        ptext = data[pkey]
        if ptext is None or self.keys.of(rkey, epoch) != name:
            return await self._unlist(dialect, tenant, epoch, order, name)
        player, version, _ = player_from_text(dialect, tenant, row.player, ptext)
        player.carried += row.credit - row.debit
        data[rkey] = text
        remember = row.indexed and self.sim.settings.server.max_remembered_ids > 0
        writes: dict[Key, str | None] = {pkey: player_text(player, version + 1), rkey: GONE if remember else None}
        writes.update(dict.fromkeys(lists))
        removals = [(order, name), (self.keys.history(dialect, tenant, row.player, epoch), name)]
        return await self._write(dialect, tenant, epoch, data, writes, [], {}, None, removals)

    async def _unlist(self, dialect: str, tenant: str, epoch: int, order: str, name: str) -> bool:
        """Take a row that is no longer there off the tenant's list (counted in the list's cut)."""
        await self._write(dialect, tenant, epoch, {}, {}, [], {}, removals=[(order, name)])
        return True

    # the configuration log

    async def sync(self) -> None:
        """Apply the configuration entries other replicas appended (all of them, after a rebuild)."""
        async with self._local:
            await self._sync_locked()

    async def _sync_locked(self) -> None:
        if self.dirty:
            await self._rebuild()
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.identity)
        pipe.xrange(self.keys.log, self._after(), "+")
        identity, entries = await pipe.execute()
        if identity != self.identity:
            await self._lost_locked()
            return
        for entry_id, fields in entries:
            self._apply(entry_id, fields)

    def _after(self) -> str:
        return "-" if self.cursor == "0-0" else "(" + self.cursor

    async def _catch_up(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Apply entries read without the local lock: those the cursor has passed meanwhile are skipped."""
        async with self._local:
            if self.dirty:
                return  # the next use rebuilds from the whole log
            for entry_id, fields in entries:
                if _stream_id(entry_id) > _stream_id(self.cursor):
                    self._apply(entry_id, fields)

    async def _start_log(self) -> bool:
        """Start the log with this replica's scenario if it is empty (a new store, or one that lost its
        data): its players are written under a new epoch first, then the log names that epoch. Learns the
        store's identity; True if this call started it."""
        if await self.redis.xlen(self.keys.log):
            identity = await self._get(self.keys.identity)
            if identity is not None:
                self.identity = str(identity)
                await self._tail(keys=[self.keys.log, self.keys.tail])
                return False
        epoch = int(await self.redis.incr(self.keys.epoch))
        await self._seed(epoch)
        genesis = jsonio.dumps({"files": scenario_files(self.sim.scenario), "epoch": epoch})
        args = [repr(time.time()), genesis, secrets.token_hex(8)]
        identity, started = await self._genesis(keys=[self.keys.log, self.keys.identity, self.keys.tail], args=args)
        self.identity = str(identity)
        return bool(started)

    async def _seed(self, epoch: int) -> None:
        """Write the players of the local ledger (the scenario's, just seeded) under ``epoch``."""
        pipe = self.redis.pipeline(transaction=False)
        tenants: set[tuple[str, str]] = set()
        for count, player in enumerate(self.sim.ledger.players.values(), 1):
            d, t = player.dialect, player.tenant
            pipe.set(self.keys.of(("p", d, t, player.id), epoch), player_text(player, 1))
            pipe.rpush(self.keys.players(d, t, epoch), player.id)
            for session in player.sessions:
                pipe.set(self.keys.of(("x", d, t, session), epoch), player.id)
            tenants.add((d, t))
            if count % 1000 == 0:
                await pipe.execute()
                pipe = self.redis.pipeline(transaction=False)
        for d, t in tenants:
            pipe.sadd(self.keys.tenants, f"{_esc(d)}:{_esc(t)}")
        pipe.set(self.keys.player_count(epoch), len(self.sim.ledger.players))
        await pipe.execute()

    async def _lost(self) -> None:
        async with self._local:
            await self._lost_locked()

    async def _lost_locked(self) -> None:
        """The store's identity changed: Redis lost its data (restarted without persistence, FLUSHALL).
        The configuration is read again from the store (started again from this replica's scenario if
        the log is empty), as every other replica does, so none serves a state of its own."""
        self.dirty = True
        await self._rebuild()

    def _note_lost(self) -> None:
        self.lost += 1
        self.lost_at = time.time()
        log.error(
            "the store %s lost its data (its identity key changed): serving from the store's state again",
            self.where.shown,
            extra={"fields": {"action": "store_lost", "store": self.where.shown}},
        )

    async def _rebuild(self) -> None:
        """Apply the whole configuration log from the start (this replica's journal is kept: resets
        applied here are history, not news). A log found empty is started again with this replica's
        scenario."""
        known = self.identity
        if not await self.redis.xlen(self.keys.log):
            self.sim.execute(Command("reset", {}))  # the local scenario's players, to seed the new epoch
        await self._start_log()
        self.sim.engine = Engine(Scenario.empty())
        self._generations.clear()
        self.cursor = "0-0"
        if known and self.identity != known:
            self._note_lost()
        journal = self.sim.journal
        entries = cast(list[tuple[str, dict[str, str]]], await self.redis.xrange(self.keys.log, "-", "+"))
        saved = list(journal)
        for entry_id, fields in entries:
            self._apply(entry_id, fields)
        journal.clear()
        for entry in saved:
            journal.append(entry)
        self.dirty = False

    def _apply(self, entry_id: str, fields: dict[str, str]) -> None:
        kind, data = fields["k"], jsonio.loads(fields["d"])
        resets = False
        if kind == "genesis":
            self.sim.execute(Command("scenario", {"files": data["files"]}))
            self.epoch, resets = int(data["epoch"]), True
        elif kind == "cmd":
            resets = data["name"] in RESETS
            try:
                self.sim.execute(Command(data["name"], data["args"]))
            except Exception:  # it succeeded where it was made: the same command on the same state cannot fail
                log.exception("applying the command %s failed", data["name"])
            if "epoch" in data:
                self.epoch = int(data["epoch"])
        self._restart_counters(entry_id, resets)
        self.cursor = entry_id

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
        """Before a control read: the configuration, the rule counters and the journal as every replica
        left them (the ledger is read from the store by each read, page by page)."""
        with _store_errors():
            await self.sync()
            await self.refresh_counters()
            await self.journal_link.pull()

    async def command(self, command: Command) -> Any:
        """A domain command. A player change runs on its working set like a request. A configuration
        change (scenario, rules, reset, journal) is made here and appended to the log if the log still ends
        where this replica read it (else it is made again on the newer state); a reset or new scenario
        first writes its players under a new epoch, which the log entry then names."""
        if command.name in LEDGER_COMMANDS:
            args = command.args
            d, t, pid = args["dialect"], args["tenant"], args["player"]
            with _store_errors():
                await self.sync()
            return await self._run((d, t, pid), [("p", d, t, pid)], lambda: self.sim.execute(command), {})
        for _ in range(RETRIES):
            async with self._local:
                with _store_errors():
                    await self._sync_locked()
                    result, entry = await self._make(command)
                    entry_id = await self._append(
                        keys=[self.keys.log, self.keys.tail], args=[self.cursor, "cmd", repr(time.time()), entry]
                    )
                if entry_id is None:  # another replica appended first: apply theirs, then make this again
                    self.dirty = True
                    continue
                self.cursor = entry_id
                self._restart_counters(entry_id, command.name in RESETS)
                if command.name in CLEARS_JOURNAL:  # every replica's journal
                    with contextlib.suppress(RedisError, OSError):
                        await self.journal_link.clear()
                if command.name in RESETS:
                    await self._prune(entry_id, command.name == "scenario")
                    self._sweep()
                return result
        raise StoreUnavailable("the configuration kept changing under this change; nothing applied")

    async def _make(self, command: Command) -> tuple[Any, str]:
        """Carry out a configuration command here; (its result, its log entry)."""
        try:
            result = self.sim.execute(command)
        except SimulatorError:
            raise  # a refusal: nothing was changed
        except Exception:
            self.dirty = True  # a bug half-way: rebuild the configuration from the log
            raise
        entry: dict[str, Any] = {"name": command.name, "args": command.args}
        if command.name in RESETS:
            epoch = int(await self.redis.incr(self.keys.epoch))
            await self._seed(epoch)
            entry["epoch"] = self.epoch = epoch
        return result, jsonio.dumps(entry)

    async def _prune(self, entry_id: str, scenario: bool) -> None:
        """Keep the configuration log to what a replica needs to rebuild: a new scenario supersedes every
        entry before it, a reset every earlier reset and journal clear (rule changes before it stay). A
        failure is harmless: the next one prunes what this one left."""
        with contextlib.suppress(RedisError, OSError):
            if scenario:
                await self.redis.xtrim(self.keys.log, minid=entry_id, approximate=False)
                return
            earlier = cast(
                list[tuple[str, dict[str, str]]], await self.redis.xrange(self.keys.log, "-", f"({entry_id}")
            )
            gone = [eid for eid, fields in earlier if fields["k"] == "cmd" and _superseded(fields["d"])]
            if gone:
                await self.redis.xdel(self.keys.log, *gone)

    def _sweep(self) -> None:
        """Delete the keys of earlier epochs in the background."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_old())

    async def _sweep_old(self) -> None:
        pattern = "{" + self.keys.prefix + ":*"
        try:
            batch: list[str] = []
            async for name in self.redis.scan_iter(match=pattern, count=SWEEP_CHUNK):
                _, _, rest = str(name).partition("}:")
                head = rest.split(":", 1)[0]
                if head.isdigit() and int(head) < self.epoch:
                    batch.append(name)
                if len(batch) >= SWEEP_CHUNK:
                    await self._delete(batch)
                    batch = []
            await self._delete(batch)
        except (RedisError, OSError):  # the next reset sweeps what this one left
            log.warning("deleting the keys of earlier epochs stopped: the store did not answer")

    async def _delete(self, names: list[str]) -> None:
        if names:
            pipe = self.redis.pipeline(transaction=False)
            for name in names:  # one key a command: on a cluster they are in many slots
                pipe.unlink(name)
            await pipe.execute()
            await asyncio.sleep(0)

    # the control API's reads: page by page from the store, never everything at once

    async def count_players(self) -> int:
        with _store_errors():
            names = [self.keys.players(d, t, self.epoch) for d, t in await self._tenant_list()]
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
            return sum(int(n) for n in await pipe.execute()) if names else 0

    async def _tenant_list(self, dialect: str | None = None) -> list[tuple[str, str]]:
        found = await self.redis.smembers(self.keys.tenants)
        tenants = []
        for text in sorted(found):
            d, _, t = str(text).partition(":")
            if dialect is None or _unesc(d) == dialect:
                tenants.append((_unesc(d), _unesc(t)))
        return tenants

    async def read_players(self, dialect: str | None, q: str | None, cursor: str | None, limit: int) -> Page[Player]:
        """Tenant by tenant (in name order), each in the order its players were created; the cursor names
        the tenant and the position in its list."""
        at = _decode_cursor(cursor)
        if at is not None and not (isinstance(at, list) and len(at) == 2 and _whole(at[1])):
            raise BadCursor(f"cursor {cursor!r} was not given by this listing")
        needle = q.lower() if q else None
        found: list[tuple[Player, str]] = []
        with _store_errors():
            for d, t in await self._tenant_list(dialect):
                name = f"{_esc(d)}:{_esc(t)}"
                if at and name < at[0]:
                    continue
                position = int(at[1]) if at and name == at[0] else 0
                listing = self.keys.players(d, t, self.epoch)
                while len(found) <= limit:
                    ids = [str(i) for i in await self._lrange(listing, position, position + SWEEP_CHUNK - 1)]
                    if not ids:
                        break
                    for index, player in enumerate(await self._players_at(d, t, ids), position):
                        if needle is None or needle in player.id.lower():
                            found.append((player, _encode_cursor([name, index + 1])))
                    position += len(ids)
                if len(found) > limit:
                    break
        return _page_of(found, limit)

    async def read_player(
        self, dialect: str, tenant: str, player_id: str, cursor: str | None, limit: int
    ) -> tuple[Player, Page[Transaction]] | None:
        with _store_errors():
            text = await self._get(self.keys.of(("p", dialect, tenant, player_id), self.epoch))
            if text is None:
                return None
            player = player_from_text(dialect, tenant, player_id, text)[0]
            history = self.keys.history(dialect, tenant, player_id, self.epoch)
            at = _decode_cursor(cursor)
            if at is not None and not (isinstance(at, list) and len(at) == 1 and _whole(at[0])):
                raise BadCursor(f"cursor {cursor!r} was not given by this listing")
            end = int(at[0]) if at else -1
            first, names = await self._script(
                self._window, [history, self.keys.cut(history)], [str(end), str(limit + 1)]
            )
            rows = await self._rows_at([str(n) for n in reversed(names)], dialect, tenant)
        positions = range(int(first) + len(names) - 1, int(first) - 1, -1)
        found = [(r, _encode_cursor([p])) for r, p in zip(rows, positions, strict=False)]
        return player, cast("Page[Transaction]", _page_of(found, limit))

    async def _newest(
        self, lists: list[tuple[str, str, str, str]], cursor: str | None, limit: int, keep: Any, load: Any
    ) -> Page[Any]:
        """Newest first over several tenants' lists (each oldest first, in the order the store committed its
        items; with the name of its cut, see :meth:`Keys.cut`): each list is read backwards from its position
        in the cursor, and the lists are merged by the time of the item each would give next. Inside one list
        the list's order stands: an item stamped before another can be committed after it (two replicas),
        so ordering a list by time would give one item on two pages and skip another. ``load`` reads items
        from keys, ``keep`` filters them."""
        try:
            at = {str(k): int(v) for k, v in (_decode_cursor(cursor) or [])}
        except (TypeError, ValueError, ArithmeticError):
            raise BadCursor(f"cursor {cursor!r} was not given by this listing") from None
        streams: list[_Backwards] = []
        for d, t, listing, cut in lists:
            name = f"{_esc(d)}:{_esc(t)}"
            # a list missing from a cursor was started after its first page: newer than all it lists
            streams.append(_Backwards(name, d, t, listing, cut, at.get(name, 0) if cursor else -1))
        heads: list[tuple[float, str, int]] = []  # (-time of the list's next item, its name, its index)
        for index, stream in enumerate(streams):
            if await stream.next(self, keep, load):
                heapq.heappush(heads, (-stream.head_time(), stream.name, index))
        taken: list[Any] = []
        following = {stream.name: stream.top for stream in streams}  # where each list's next page starts
        while heads and len(taken) <= limit:
            _, name, index = heapq.heappop(heads)
            stream = streams[index]
            position, item = stream.take()
            if len(taken) < limit:
                following[name] = position
            taken.append(item)
            if await stream.next(self, keep, load):
                heapq.heappush(heads, (-stream.head_time(), stream.name, index))
        if len(taken) <= limit:
            return Page(taken, None)
        return Page(taken[:limit], _encode_cursor(sorted(following.items())))

    async def read_transactions(
        self, dialect: str | None, player: str | None, status: str | None, cursor: str | None, limit: int
    ) -> Page[Transaction]:
        def keep(row: Row) -> bool:
            return (not player or row.player == player) and (not status or row.status == status)

        async def load(names: list[str], d: str, t: str) -> list[Row | None]:
            texts = await self._mget(names) if names else []
            return [row_from_text(d, t, x) if x and x != GONE else None for x in texts]

        with _store_errors():
            lists = []
            for d, t in await self._tenant_list(dialect):
                order = self.keys.order(d, t, self.epoch)
                lists.append((d, t, order, self.keys.cut(order)))
            return cast("Page[Transaction]", await self._newest(lists, cursor, limit, keep, load))

    async def read_tombstones(
        self, dialect: str | None, player: str | None, cursor: str | None, limit: int
    ) -> tuple[Page[Tombstone], dict[str, int]]:
        def keep(stone: Tombstone) -> bool:
            return not player or stone.player == player

        async def load(names: list[str], d: str, t: str) -> list[Tombstone | None]:
            texts = await self._mget(names) if names else []
            return [stone_from_text(d, t, x) if x else None for x in texts]

        with _store_errors():
            tenants = await self._tenant_list(dialect)
            e = self.epoch
            lists = [(d, t, self.keys.stones(d, t, e), self.keys.forgotten(d, t, e)) for d, t in tenants]
            page = await self._newest(lists, cursor, limit, keep, load)
            pipe = self.redis.pipeline(transaction=False)
            for _, _, listing, counter in lists:
                pipe.llen(listing)
                pipe.get(counter)
            counts = await pipe.execute() if lists else []
        count = sum(int(c) for c in counts[::2])  # entries whose stone has expired are counted until pushed out
        forgotten = sum(int(c or 0) for c in counts[1::2])
        if player:  # the player's stones, counted list by list
            with _store_errors():
                count = 0
                for d, t, listing, _ in lists:
                    async for names in self._chunks(listing):
                        count += sum(1 for stone in await load(names, d, t) if stone is not None and keep(stone))
        server = self.sim.settings.server
        return cast("Page[Tombstone]", page), {"count": count, "cap": server.max_tombstones, "forgotten": forgotten}

    async def read_invariants(self) -> dict[str, Any]:
        """The ledger's self-check, player by player from the store: each balance equals its opening, what
        retention carried and its kept rows; none is negative; a reversal refunds exactly the debits it
        reversed; a tracked round is debited once and not paid once refunded."""
        problems: list[dict[str, Any]] = []
        players = transactions = stones = 0
        with _store_errors():
            for d, t in await self._tenant_list():
                async for ids in self._chunks(self.keys.players(d, t, self.epoch)):
                    for player in await self._players_at(d, t, ids):
                        players += 1
                        history = self.keys.history(d, t, player.id, self.epoch)
                        rows = await self._rows_at(await self._lrange(history, 0, -1), d, t)
                        transactions += len(rows)
                        problems += _player_problems(player, rows)
                async for names in self._chunks(self.keys.stones(d, t, self.epoch)):
                    for text in await self._mget(names):
                        if text:
                            stones += 1
                            problems += await self._stone_problems(stone_from_text(d, t, text))
        return {
            "ok": not problems,
            "players": players,
            "transactions": transactions,
            "tombstones": stones,
            "problems": problems,
        }

    async def _stone_problems(self, stone: Tombstone) -> list[dict[str, Any]]:
        """A debit applied under a tombstone: on the id it names, or on the player's round it names."""
        d, t = stone.dialect, stone.tenant
        if stone.transaction is not None:
            names = [self.keys.of(("t", d, t, stone.scope, stone.transaction), self.epoch)]
        else:
            assert stone.round is not None
            text = await self._get(self.keys.of(("r", d, t, stone.player, stone.round), self.epoch))
            members = jsonio.loads(text) if text else []
            names = [self.keys.of(("t", d, t, scope, txn_id), self.epoch) for scope, txn_id in members]
        return [_under_stone(row, stone) for row in await self._rows_at(names, d, t) if row.debit]

    async def _chunks(self, listing: str) -> AsyncIterator[list[str]]:
        """A list's members from the front, SWEEP_CHUNK at a time (never the whole list at once)."""
        position = 0
        while names := await self._lrange(listing, position, position + SWEEP_CHUNK - 1):
            position += len(names)
            yield names

    async def books(self) -> Books:
        """The scorecard's lookups (made from a worker thread): a synchronous client of its own."""
        return _SyncBooks(self.where, self.keys, self.epoch)

    async def _players_at(self, d: str, t: str, ids: list[str]) -> list[Player]:
        if not ids:
            return []
        texts = await self._mget([self.keys.of(("p", d, t, pid), self.epoch) for pid in ids])
        return [player_from_text(d, t, pid, text)[0] for pid, text in zip(ids, texts, strict=True) if text]

    async def _rows_at(self, names: list[str], d: str, t: str) -> list[Row]:
        if not names:
            return []
        texts = await self._mget(names)
        return [row_from_text(d, t, text) for text in texts if text and text != GONE]


class _Backwards:
    """One list of :meth:`RedisStore._newest`, read backwards a chunk at a time (by the ``WINDOW`` script,
    positions counted from the list's first entry ever): the items ``keep`` accepts, each with its position."""

    __slots__ = ("cut", "d", "end", "listing", "name", "ready", "t", "top")

    def __init__(self, name: str, d: str, t: str, listing: str, cut: str, end: int) -> None:
        self.name, self.d, self.t, self.listing, self.cut = name, d, t, listing, cut
        self.end = end  # everything from here up is read (-1: nothing yet, from the list's end)
        self.top = max(end, 0)  # where the list ended when its reading began (set by the first read)
        self.ready: list[tuple[int, Any]] = []  # read and kept, not given yet: the next one last

    async def next(self, store: RedisStore, keep: Any, load: Any) -> bool:
        """Whether the list has another item (reading the next chunk if need be)."""
        while not self.ready and self.end != 0:
            first, names = await store._script(
                store._window, [self.listing, self.cut], [str(self.end), str(SWEEP_CHUNK)]
            )
            start = int(first)
            if self.end < 0:
                self.top = start + len(names)
            if not names:
                self.end = 0
                break
            items = await load([str(n) for n in names], self.d, self.t)
            self.ready = [(p, i) for p, i in enumerate(items, start) if i is not None and keep(i)]
            self.end = start
        return bool(self.ready)

    def head_time(self) -> float:
        return float(self.ready[-1][1].time)

    def take(self) -> tuple[int, Any]:
        return self.ready.pop()


class _SyncBooks:
    """Transactions looked up by id with a synchronous client (the scorecard runs in a thread)."""

    def __init__(self, where: StoreURL, keys: Keys, epoch: int) -> None:
        self.where, self.keys, self.epoch = where, keys, epoch
        self._client: Any = None

    def find(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Row | None:
        if self._client is None:
            self._client = _sync_client(self.where)
        text = self._client.get(self.keys.of(("t", dialect, tenant, scope, txn_id), self.epoch))
        return row_from_text(dialect, tenant, text) if text and text != GONE else None


def _player_problems(player: Player, rows: list[Row]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    where = list(player.key)
    implied = player.opening + player.carried + sum((r.credit - r.debit for r in rows), Decimal(0))
    if implied != player.balance:
        problems.append(
            {
                "problem": "balance differs from its transactions",
                "player": where,
                "balance": player.balance,
                "implied": implied,
            }
        )
    if player.balance < 0:
        problems.append({"problem": "negative balance", "player": where, "balance": player.balance})
    refunded: dict[str, Decimal] = {}
    for row in rows:
        if row.reversed_by is not None:
            refunded[row.reversed_by.id] = refunded.get(row.reversed_by.id, Decimal(0)) + row.debit
    for row in rows:
        if row.kind in REVERSALS and row.credit != refunded.get(row.id, Decimal(0)) and not player.carried:
            problems.append(
                {
                    "problem": "refund differs from the debits it reversed",
                    "transaction": [row.dialect, row.tenant, row.scope, row.id],
                    "refund": row.credit,
                    "reversed": refunded.get(row.id, Decimal(0)),
                }
            )
    rounds: dict[str, list[Row]] = {}
    for row in rows:
        if row.track_round and row.round is not None:
            rounds.setdefault(row.round, []).append(row)
    for round_id, found in rounds.items():
        if sum(1 for r in found if r.debit) > 1:
            problems.append({"problem": "round debited more than once", "player": where, "round": round_id})
    return problems


def _under_stone(row: Row, stone: Tombstone) -> dict[str, Any]:
    return {
        "problem": "debit applied under a tombstone",
        "transaction": [row.dialect, row.tenant, row.scope, row.id],
        "round": stone.round,
        "by": stone.by,
    }


def _encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(jsonio.dumps(value).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        return jsonio.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadCursor(f"cursor {cursor[:40]!r} was not given by this listing") from None


def _whole(value: Any) -> bool:
    """A position in a cursor: a whole number (JSON numbers are read as Decimal)."""
    return isinstance(value, int | Decimal) and value == int(value) and value >= 0


def _page_of(found: list[tuple[Any, str]], limit: int) -> Page[Any]:
    """A page of ``found``'s items, each paired with the cursor that follows it (:func:`page_of`'s rule)."""
    page = page_of(found, limit, lambda pair: pair[1])
    return Page([item for item, _ in page.items], page.next)


def _superseded(data: str) -> bool:
    """A configuration entry that a later reset makes useless to a rebuild."""
    return bool(jsonio.loads(data)["name"] in ("reset", "journal_clear"))


def _entries(raw: list[Any]) -> list[tuple[str, dict[str, str]]]:
    """Stream entries as redis-py's client shapes them, ``(id, {field: value})``, from either shape."""
    out = []
    for entry_id, fields in raw:
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        out.append((entry_id, fields))
    return out


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _opt(value: float | None) -> str:
    return "-1" if value is None else repr(value)


class _StoreErrors:
    """Redis errors as the internal error every dialect documents (a class: entered several times a
    request, it costs a fifth of a generator-based context manager)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (RedisError, OSError)):
            raise StoreUnavailable(f"the shared store did not answer: {type(exc).__name__}: {exc}") from None


_STORE_ERRORS = _StoreErrors()


def _store_errors() -> _StoreErrors:
    return _STORE_ERRORS


def _sync_client(where: StoreURL) -> Any:
    """A synchronous client (for the scorecard's worker thread), like :func:`_client`."""
    import redis as syncredis
    import redis.cluster as synccluster

    options: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": CONNECT_TIMEOUT}
    if where.nodes:
        parts = urllib.parse.urlsplit(where.url)
        nodes = [synccluster.ClusterNode(host, port) for host, port in where.nodes]  # type: ignore[no-untyped-call]
        return synccluster.RedisCluster(
            startup_nodes=nodes, password=parts.password, username=parts.username or None, **options
        )
    return syncredis.Redis.from_url(where.url, **options)


def _client(where: StoreURL) -> aioredis.Redis:
    """A pooled client that retries a command once on a fresh connection when its pooled one turns out
    dead (a restarted Redis): every script here is a compare-and-set, so a retry never applies twice.
    On a Redis Cluster, redis-py's cluster client: every key here carries the ``{prefix}`` hash tag, so
    one script's keys are always in one slot."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
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
