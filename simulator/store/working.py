"""One request's working set: the ledger's money rules run on just the keys a request reads.

A stateless replica keeps no ledger. For each request (or player command) it loads the keys the request
names from the shared store (the player, the transaction id, the round, the tombstones, the session), and
runs the dialect's own synchronous ``perform`` against a :class:`WorkingLedger`: the same
:class:`~simulator.ledger.core.Ledger` rules over a handful of rows. A read of a key that was not loaded
raises :class:`Miss`; the store loads it and runs the request again from the start on a fresh working set
(a rerun costs microseconds, and a refused request changes nothing). When the request is done,
:meth:`WorkingLedger.diff` says which keys it wrote, as text, and which it read, so that the store can
commit them with a check that nothing it read has changed meanwhile (compare-and-set).

Keys are tuples ``(kind, dialect, tenant, ...)``:

- ``("p", d, t, player)``: a player (JSON; ``version|json``);
- ``("t", d, t, scope, id)``: a transaction row (JSON), or :data:`GONE`, an id dropped by retention and
  remembered;
- ``("r", d, t, player, round)``: the ``[scope, id]`` of the rows posted with ``track_round`` on a round;
- ``("f", d, t, scope, id)``: the ``[scope, id]`` of the rows whose ``ref`` names this id;
- ``("s", d, t, "txn", scope, id)`` and ``("s", d, t, "round", player, round)``: a tombstone;
- ``("x", d, t, session)``: the player a session belongs to.

Every key of one request shares its ``(dialect, tenant)``: the shared store puts them in one hash slot.
"""

from __future__ import annotations

import secrets
import weakref
from array import array
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

import orjson

from simulator import jsonio
from simulator.ledger import Ledger, Player
from simulator.ledger.core import Tombstone, id_fingerprint
from simulator.ledger.memory import MemoryStore

Key = tuple[str, ...]
#: a transaction id dropped by retention and remembered (its fingerprint lives as long as the key)
GONE = "-"
PLAYER_FIELDS = (
    "currency",
    "locked",
    "blocked",
    "disabled",
    "session_expired",
    "reality_check",
    "site_id",
)


class Miss(BaseException):
    """The working set lacks keys a request reads: load them and run the request again. A BaseException,
    so that no ``except Exception`` in a dialect can swallow it."""

    def __init__(self, keys: Iterable[Key]) -> None:
        super().__init__()
        self.keys = tuple(keys)


class Row:
    """A transaction of the working set, with the attributes of :class:`simulator.ledger.Transaction`."""

    __slots__ = (
        "balance_after",
        "credit",
        "debit",
        "dialect",
        "fingerprint",
        "game",
        "id",
        "indexed",
        "kind",
        "player",
        "ref",
        "reversed_by",
        "round",
        "scope",
        "seq",
        "status",
        "tenant",
        "time",
        "track_round",
    )

    def __init__(self, dialect: str, tenant: str, data: dict[str, Any]) -> None:
        self.dialect, self.tenant = dialect, tenant
        self.seq = int(data.get("seq", 0))
        self.player = data["player"]
        self.id = data["id"]
        self.kind = data["kind"]
        self.scope = data["scope"]
        self.debit = Decimal(data["debit"])
        self.credit = Decimal(data["credit"])
        self.balance_after = Decimal(data["after"])
        self.time = float(data["time"])
        self.status = data["status"]
        self.round = data.get("round")
        self.game = data.get("game")
        self.ref = data.get("ref")
        fp = data.get("fp")
        self.fingerprint = int(fp) if fp is not None else None
        by = data.get("by")
        self.reversed_by = _Ref(by) if by is not None else None
        self.track_round = bool(data.get("tr"))
        self.indexed = bool(data.get("ix", True))

    def __repr__(self) -> str:
        return f"<Row {self.seq} {self.kind} {self.id!r} {self.status}>"

    @property
    def balance_before(self) -> Decimal:
        return self.balance_after + self.debit - self.credit

    @property
    def amount(self) -> Decimal:
        return self.credit - self.debit

    def body(self) -> str:
        """The row as stored, without its ``seq`` (the store numbers new rows when it commits them)."""
        data: dict[str, Any] = {
            "player": self.player,
            "id": self.id,
            "kind": self.kind,
            "scope": self.scope,
            "debit": str(self.debit),
            "credit": str(self.credit),
            "after": str(self.balance_after),
            "time": self.time,
            "status": self.status,
        }
        if self.round is not None:
            data["round"] = self.round
        if self.game is not None:
            data["game"] = self.game
        if self.ref is not None:
            data["ref"] = self.ref
        if self.fingerprint is not None:
            data["fp"] = str(self.fingerprint)
        if self.reversed_by is not None:
            data["by"] = self.reversed_by.id
        if self.track_round:
            data["tr"] = 1
        if not self.indexed:
            data["ix"] = 0
        return jsonio.dumps(data)[1:]  # without the opening brace: the store prefixes '{"seq":N,'

    def text(self) -> str:
        return '{"seq":' + str(self.seq) + "," + self.body()


class _Ref:
    """``reversed_by`` of a stored row: the reversal's id (all the rules and views read of it)."""

    __slots__ = ("id",)

    def __init__(self, txn_id: str) -> None:
        self.id = txn_id


def row_from_text(dialect: str, tenant: str, text: str) -> Row:
    return Row(dialect, tenant, orjson.loads(text))  # as a player: amounts are strings, times floats


def player_text(player: Player, version: int) -> str:
    return f"{version}|{player_json(player)}"


def player_json(player: Player) -> str:
    data: dict[str, Any] = {
        "balance": str(player.balance),
        "opening": str(player.opening),
        "carried": str(player.carried),
        "created": player.created,
        "updated": player.updated,
        "n": len(player.rows),
        "sessions": player.sessions,
    }
    for name in PLAYER_FIELDS:
        value = getattr(player, name)
        if value not in (None, False):
            data[name] = value
    if player.bet_limit is not None:
        data["bet_limit"] = str(player.bet_limit)
    return jsonio.dumps(data)


def player_from_text(dialect: str, tenant: str, pid: str, text: str) -> tuple[Player, int, str]:
    """(the player, its version, its JSON as stored)."""
    version, _, body = text.partition("|")
    data = orjson.loads(body)  # its amounts are strings (read as Decimal below), its times floats
    player = Player(
        dialect,
        tenant,
        pid,
        data["currency"],
        Decimal(data["balance"]),
        Decimal(data["opening"]),
        float(data["created"]),
        float(data["updated"]),
    )
    for name in PLAYER_FIELDS[1:]:
        if name in data:
            setattr(player, name, data[name])
    if "bet_limit" in data:
        player.bet_limit = Decimal(data["bet_limit"])
    player.carried = Decimal(data["carried"])
    player.sessions = {str(k): float(v) for k, v in data["sessions"].items()}
    player.rows = array("Q", [0] * min(int(data["n"]), 1))  # "has transactions" is all the rules read
    return player, int(version), body


def stone_text(stone: Tombstone) -> str:
    return jsonio.dumps(
        {
            "player": stone.player,
            "transaction": stone.transaction,
            "round": stone.round,
            "scope": stone.scope,
            "by": stone.by,
            "time": stone.time,
            "refused": stone.refused,
        }
    )


def stone_from_text(dialect: str, tenant: str, text: str) -> Tombstone:
    d = orjson.loads(text)  # no amounts
    return Tombstone(
        dialect, tenant, d["player"], d["transaction"], d["round"], d["scope"], d["by"], float(d["time"]), d["refused"]
    )


def members_text(members: Sequence[Sequence[str]]) -> str:
    return jsonio.dumps([list(m) for m in members])


class WorkingRows:
    """The transaction store of a working set (the methods :class:`~simulator.ledger.core.Ledger` calls)."""

    def __init__(self, ws: WorkingLedger) -> None:
        # a weak reference: with a strong one, every working set would be a reference cycle, garbage that
        # only the cyclic collector frees (it was most of what the collector walked on the Redis store)
        self.ws = cast("WorkingLedger", weakref.proxy(ws))
        self.rows: dict[Key, Row] = {}  # ("t", d, t, scope, id) -> row, loaded or new
        self.new: list[Row] = []
        self.lists: dict[Key, list[list[str]]] = {}  # round and referrer lists, as loaded then appended

    # what Ledger calls

    def clear(self) -> None:
        self.rows.clear()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def next_row(self) -> int:
        """Only names an adjustment (``admin-N``: its id is not indexed, but its row's key must be unique
        among every replica's adjustments): 48 random bits."""
        return secrets.randbits(48)

    def enrol(self, player: Player) -> None:
        player.no = 0
        player.history = ()

    def unenrol(self, player: Player) -> None:
        pass

    def log(self) -> Sequence[Row]:
        return list(self.rows.values())

    def find_row(self, dialect: str, tenant: str, scope: str, txn_id: str) -> Row | None:
        return self.ws.row(("t", dialect, tenant, scope, txn_id))

    def find(self, dialect: str, tenant: str, scope: str, txn_id: str) -> Row | None:
        return self.find_row(dialect, tenant, scope, txn_id)

    def round(self, player: Player, round_id: str) -> list[Row]:
        return self.ws.members(("r", player.dialect, player.tenant, player.id, round_id))

    def referring(self, txn: Row) -> list[Row]:
        return self.ws.members(("f", txn.dialect, txn.tenant, txn.scope, txn.id))

    def append(
        self,
        player: Player,
        txn_id: str,
        kind: str,
        scope: str,
        debit: Decimal,
        credit: Decimal,
        after: Decimal,
        now: float,
        *,
        round_id: str | None,
        game: str | None,
        ref: str | None,
        fingerprint: int | None,
        indexed: bool,
        track_round: bool,
    ) -> Row:
        d, t = player.dialect, player.tenant
        key = ("t", d, t, scope, txn_id) if indexed else ("t", d, t, scope, f"#{len(self.new)}:{txn_id}")
        lists = []
        if track_round and round_id is not None:
            lists.append(("r", d, t, player.id, round_id))
        if ref is not None:
            lists.append(("f", d, t, scope, ref))
        self.ws.need(*lists)
        row = Row(
            d,
            t,
            {
                "player": player.id,
                "id": txn_id,
                "kind": kind,
                "scope": scope,
                "debit": debit,
                "credit": credit,
                "after": after,
                "time": now,
                "status": "applied",
                "round": round_id,
                "game": game,
                "ref": ref,
                "fp": fingerprint,
                "tr": track_round,
                "ix": indexed,
            },
        )
        self.rows[key] = row
        self.new.append(row)
        for name in lists:
            self.lists.setdefault(name, []).append([scope, txn_id])
        if not player.rows:
            player.rows.append(0)
        return row

    def mark_reversed(self, target: Row, by: Row, status: str) -> None:
        target.reversed_by = _Ref(by.id)
        target.status = status


class WorkingLedger(Ledger):
    """The ledger's rules over the keys one request loaded (``data``: key -> stored text, or None where
    the store has nothing). Reading any other key raises :class:`Miss`."""

    def __init__(self, clock: Callable[[], float], limits: Ledger, data: dict[Key, str | None]) -> None:
        super().__init__(
            clock,
            limits.max_tombstones,
            limits.max_transactions,
            1 << 62,  # players are counted by the store, not by a working set
            max_age=0,
            id_retention=limits.id_retention,
            max_remembered=max(limits.max_remembered, 1),
        )
        self.data = data
        self.versions: dict[Key, int] = {}
        self.loaded_json: dict[Key, str] = {}
        for key, text in data.items():
            if text is not None:
                self._load(key, text)

    def _new_store(self) -> MemoryStore:
        self.rows = WorkingRows(self)
        return cast("MemoryStore", self.rows)  # the methods Ledger calls (TransactionStore), over the keys

    def _load(self, key: Key, text: str) -> None:
        kind, d, t = key[0], key[1], key[2]
        if kind == "p":
            player, version, body = player_from_text(d, t, key[3], text)
            self.rows.enrol(player)
            self.players[(d, t, key[3])] = player
            self.versions[key], self.loaded_json[key] = version, body
        elif kind == "t":
            if text == GONE:
                self.remembered.add(id_fingerprint((d, t, key[3], key[4])), self.clock())
            else:
                self.rows.rows[key] = row_from_text(d, t, text)
        elif kind in ("r", "f"):
            self.rows.lists[key] = orjson.loads(text)  # lists of [scope, id]
        elif kind == "s":
            self._tombstones[(key[3], d, t, *key[4:])] = stone_from_text(d, t, text)
        elif kind == "x":
            self._sessions[(d, t, key[3])] = text

    # the loaded keys

    def need(self, *keys: Key) -> None:
        data = self.data
        for key in keys:
            if key not in data:
                raise Miss([k for k in keys if k not in data])

    def row(self, key: Key) -> Row | None:
        self.need(key)
        return self.rows.rows.get(key)

    def members(self, key: Key) -> list[Row]:
        self.need(key)
        names = [("t", key[1], key[2], scope, txn_id) for scope, txn_id in self.rows.lists.get(key, [])]
        self.need(*names)
        return [r for r in (self.rows.rows.get(n) for n in names) if r is not None]

    # Ledger's reads, guarded

    def retain(self) -> None:
        """Retention runs in the store (a background trim), not per working set."""

    def player(self, dialect: str, tenant: str, player_id: str) -> Player | None:
        self.need(("p", dialect, tenant, player_id))
        return self.players.get((dialect, tenant, player_id))

    def open(self, dialect: str, tenant: str, player_id: str, currency: str, balance: Decimal, **flags: Any) -> Player:
        self.need(("p", dialect, tenant, player_id))
        return super().open(dialect, tenant, player_id, currency, balance, **flags)

    def forgotten_id(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        self.need(("t", dialect, tenant, scope, txn_id))
        return super().forgotten_id(dialect, tenant, txn_id, scope)

    def transaction_tombstone(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> Tombstone | None:
        self.need(("s", dialect, tenant, "txn", scope, txn_id))
        return super().transaction_tombstone(dialect, tenant, txn_id, scope)

    def round_tombstone(self, player: Player, round_id: str) -> Tombstone | None:
        self.need(("s", player.dialect, player.tenant, "round", player.id, round_id))
        return super().round_tombstone(player, round_id)

    def bury_transaction(
        self, dialect: str, tenant: str, player_id: str, txn_id: str, *, by: str, scope: str = ""
    ) -> Tombstone:
        self.need(("s", dialect, tenant, "txn", scope, txn_id))
        return super().bury_transaction(dialect, tenant, player_id, txn_id, by=by, scope=scope)

    def bury_round(self, player: Player, round_id: str, *, by: str) -> Tombstone:
        self.need(("s", player.dialect, player.tenant, "round", player.id, round_id))
        return super().bury_round(player, round_id, by=by)

    def bind_session(self, player: Player, session_id: str, create: bool = True) -> str | None:
        self.need(("x", player.dialect, player.tenant, session_id))
        return super().bind_session(player, session_id, create)

    def unbind_session(self, dialect: str, tenant: str, session_id: str) -> None:
        self.need(("x", dialect, tenant, session_id))
        owner = self._sessions.get((dialect, tenant, session_id))
        if owner is not None:
            self.need(("p", dialect, tenant, owner))
        super().unbind_session(dialect, tenant, session_id)

    def in_flight(self, dialect: str, tenant: str, txn_id: str, scope: str = "") -> bool:
        return False  # the store's claim says so (XPro's check reads op.params["in_flight"])

    # what to commit

    def diff(self) -> tuple[dict[Key, str | None], list[Row], dict[Key, str]]:
        """(keys to write: text, or None to delete; new rows, oldest first; the players created, by key:
        their ids for the players' index). Every key written was read (so the store can check it)."""
        writes: dict[Key, str | None] = {}
        created: dict[Key, str] = {}
        key: Key
        for (d, t, pid), player in self.players.items():
            key = ("p", d, t, pid)
            body = player_json(player)
            if self.loaded_json.get(key) != body:
                writes[key] = f"{self.versions.get(key, 0) + 1}|{body}"
                if key not in self.versions:
                    created[key] = pid
        new = {id(r) for r in self.rows.new}
        for key, row in self.rows.rows.items():
            if id(row) in new:
                continue
            text = row.text()
            if self.data.get(key) != text:
                writes[key] = text
        for key, members in self.rows.lists.items():
            text = members_text(members)
            if self.data.get(key) != text:
                writes[key] = text
        for skey, stone in self._tombstones.items():
            key = ("s", skey[1], skey[2], skey[0], *skey[3:])
            text = stone_text(stone)
            if self.data.get(key) != text:
                writes[key] = text
        for (d, t, session), owner in self._sessions.items():
            key = ("x", d, t, session)
            if self.data.get(key) != owner:
                writes[key] = owner
        for key, loaded in self.data.items():
            if key[0] == "x" and loaded is not None and (key[1], key[2], key[3]) not in self._sessions:
                writes[key] = None
        return writes, self.rows.new, created
