"""The embedded transaction store: columns of machine values, so a million transactions cost little memory
and nothing the cyclic garbage collector has to walk.

Every transaction is a *row*: its numbers are :data:`WIDTH` consecutive 64-bit integers of one ``array``
(player, kind/scope/flags, game, debit, credit, balance after, fingerprint; amounts in :data:`SCALE`
units; kinds, scopes, games and players as small table numbers), its time a double, its status a byte, and
its two texts (transaction id, round id) in append-only UTF-8 blobs. One ``extend`` per row keeps the write
cheap. The indexes are dicts of ints keyed by the
hash of the text (the blob confirms a hit; the rare different text with the same hash goes to a side
table), so no per-row Python object survives a request: ints, strings, arrays and dicts of them are not
tracked by the collector, which is what keeps p99 flat as the ledger grows (see the README's
"Performance"). An amount that does not fit (more than 8 decimal places, or beyond +-92 billion) keeps its
exact ``Decimal`` values in a side table: money is exact whatever the row holds.

:class:`Transaction` is a light view on one row (two slots); its attributes read the columns. Two views
of the same row compare equal. The ledger (:mod:`simulator.ledger.core`) is the only writer; its reads and
writes go through the methods listed in :class:`simulator.ledger.store.TransactionStore`.
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Protocol, overload

from simulator.money import ZERO

#: units per currency unit: 8 decimal places, the most any dialect accepts (``max_decimals`` <= 8)
SCALE = 10**8
_LIMIT = 2**63 - 1
_DSCALE = Decimal(SCALE)

HAS_FINGERPRINT, HAS_ROUND, HAS_GAME, INDEXED = 1, 2, 4, 8
#: the integers of one row, at ``row * WIDTH + field``
PLAYER, META, GAME, DEBIT, CREDIT, AFTER, FINGERPRINT = range(7)
WIDTH = 7
# META packs the kind (8 bits), the scope (16 bits) and the flags (8 bits)

TxnKey = tuple[str, str, str, str]  # (dialect, tenant, scope, transaction id)


class Owner(Protocol):
    """What the store needs of a player (:class:`simulator.ledger.core.Player`, which imports this module:
    the store names no class of the rules)."""

    dialect: str
    tenant: str
    id: str
    no: int
    rows: array[int]
    history: Sequence[Transaction]
    carried: Decimal

    @property
    def key(self) -> tuple[str, str, str]: ...


def units(value: Decimal) -> int | None:
    """``value`` in :data:`SCALE` units if exactly representable in 64 bits, else None."""
    if not value:
        return 0
    numerator, denominator = value.as_integer_ratio()
    if SCALE % denominator:
        return None
    n = numerator * (SCALE // denominator)
    return n if -_LIMIT <= n <= _LIMIT else None


def decimal(n: int) -> Decimal:
    """The ``Decimal`` of ``n`` units, without trailing zeros (``150000000`` -> ``Decimal('1.5')``)."""
    if not n:
        return ZERO
    whole, part = divmod(n, SCALE)
    if not part:
        return Decimal(whole)
    return (Decimal(n) / _DSCALE).normalize()


class Texts:
    """An append-only column of strings as one UTF-8 blob and the end offset of each; the oldest can be
    cut off (retention): rows keep their numbers, offsets count the bytes cut."""

    __slots__ = ("_cut", "_data", "_ends", "_first")

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")  # absolute end offset of each kept text
        self._cut = 0  # bytes cut from the front of _data
        self._first = 0  # the row of _ends[0]

    def append(self, text: str) -> None:
        self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(self._cut + len(self._data))

    def __getitem__(self, row: int) -> str:
        i = row - self._first
        start = self._ends[i - 1] if i else self._cut
        return self._data[start - self._cut : self._ends[i] - self._cut].decode("utf-8", "surrogatepass")

    def cut_before(self, row: int) -> None:
        """Forget the texts of the rows before ``row``."""
        k = row - self._first
        if k <= 0:
            return
        start = self._ends[k - 1]
        del self._ends[:k]
        del self._data[: start - self._cut]  # bytearray drops its front without copying the rest
        self._cut, self._first = start, row


class TextIndex:
    """text -> first row, keyed by ``hash(text)`` (an int costs less than the string); ``texts`` confirms a
    hit, and a text whose hash another text already holds is kept under its own name in ``_clash``."""

    __slots__ = ("_clash", "_rows", "_texts")

    def __init__(self, texts: Texts) -> None:
        self._rows: dict[int, int] = {}
        self._clash: dict[str, int] = {}
        self._texts = texts

    def get(self, text: str) -> int | None:
        row = self._rows.get(hash(text))
        if row is None or self._texts[row] == text:
            return row
        return self._clash.get(text)

    def add(self, text: str, row: int) -> None:
        """Index a text not yet indexed."""
        key = hash(text)
        if key in self._rows:
            self._clash[text] = row
        else:
            self._rows[key] = row

    def move(self, text: str, row: int, to: int | None) -> None:
        """The entry of ``text`` (at ``row``) now leads to ``to`` (None: remove it)."""
        key = hash(text)
        if self._rows.get(key) == row:
            if to is None:
                del self._rows[key]
            else:
                self._rows[key] = to
        elif self._clash.get(text) == row:
            if to is None:
                del self._clash[text]
            else:
                self._clash[text] = to

    def __len__(self) -> int:
        return len(self._rows) + len(self._clash)


class Interned:
    """A small table of repeated strings (kinds, scopes, games): text <-> number."""

    __slots__ = ("limit", "numbers", "texts")

    def __init__(self, *first: str, limit: int = 2**32) -> None:
        self.limit = limit
        self.texts: list[str] = []
        self.numbers: dict[str, int] = {}
        for text in first:
            self.number(text)

    def number(self, text: str) -> int:
        n = self.numbers.get(text)
        if n is None:
            if len(self.texts) >= self.limit:
                raise OverflowError(f"more than {self.limit} distinct values")
            n = self.numbers[text] = len(self.texts)
            self.texts.append(text)
        return n


class Transaction:
    """One stored transaction, read from the columns on access. ``amount`` is the signed effect."""

    __slots__ = ("_id", "_money", "_store", "row")

    def __init__(
        self,
        store: MemoryStore,
        row: int,
        money: tuple[Decimal, Decimal, Decimal] | None = None,
        txn_id: str | None = None,
    ) -> None:
        self._store = store
        self.row = row
        self._money = money  # (debit, credit, balance after), read once
        self._id = txn_id

    def _amounts(self) -> tuple[Decimal, Decimal, Decimal]:
        if self._money is None:
            self._money = self._store.money(self.row)
        return self._money

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and other._store is self._store and other.row == self.row

    def __hash__(self) -> int:
        return hash((id(self._store), self.row))

    def __repr__(self) -> str:
        return f"<Transaction {self.seq} {self.kind} {self.id!r} {self.status}>"

    @property
    def seq(self) -> int:
        return self.row + 1

    def _field(self, field: int) -> int:
        store = self._store
        return store.nums[(self.row - store.first) * WIDTH + field]

    @property
    def owner(self) -> Owner:
        return self._store.players[self._field(PLAYER)]

    @property
    def dialect(self) -> str:
        return self.owner.dialect

    @property
    def tenant(self) -> str:
        return self.owner.tenant

    @property
    def player(self) -> str:
        return self.owner.id

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = self._store.ids[self.row]
        return self._id

    @property
    def kind(self) -> str:
        return self._store.kinds.texts[self._field(META) & 0xFF]

    @property
    def status(self) -> str:
        store = self._store
        return store.statuses.texts[store.status[self.row - store.first]]

    @property
    def scope(self) -> str:
        return self._store.scopes.texts[self._field(META) >> 8 & 0xFFFF]

    @property
    def round(self) -> str | None:
        return self._store.rounds[self.row] if self._field(META) >> 24 & HAS_ROUND else None

    @property
    def game(self) -> str | None:
        return self._store.games.texts[self._field(GAME)] if self._field(META) >> 24 & HAS_GAME else None

    @property
    def fingerprint(self) -> int | None:
        return self._field(FINGERPRINT) if self._field(META) >> 24 & HAS_FINGERPRINT else None

    @property
    def ref(self) -> str | None:
        return self._store.ref_of(self.row)

    @property
    def reversed_by(self) -> Transaction | None:
        by = self._store.reversed_by.get(self.row)
        return None if by is None else Transaction(self._store, by)

    @property
    def time(self) -> float:
        return self._store.time[self.row - self._store.first]

    @property
    def debit(self) -> Decimal:
        return self._amounts()[0]

    @property
    def credit(self) -> Decimal:
        return self._amounts()[1]

    @property
    def balance_after(self) -> Decimal:
        return self._amounts()[2]

    @property
    def balance_before(self) -> Decimal:
        debit, credit, after = self._amounts()
        return after + debit - credit

    @property
    def amount(self) -> Decimal:
        debit, credit, _ = self._amounts()
        return credit - debit


class Rows(Sequence[Transaction]):
    """Transactions by row number (a player's history, or the whole log), oldest first."""

    __slots__ = ("_rows", "_store")

    def __init__(self, store: MemoryStore, rows: array[int] | None = None) -> None:
        self._store = store
        self._rows = rows  # None: every row of the store

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._store)

    @overload
    def __getitem__(self, index: int) -> Transaction: ...

    @overload
    def __getitem__(self, index: slice) -> list[Transaction]: ...

    def __getitem__(self, index: int | slice) -> Transaction | list[Transaction]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("transaction index out of range")
        return Transaction(self._store, self.row_numbers()[index])

    def __iter__(self) -> Iterator[Transaction]:
        store = self._store
        return (Transaction(store, r) for r in self.row_numbers())

    def __reversed__(self) -> Iterator[Transaction]:
        store = self._store
        return (Transaction(store, r) for r in reversed(self.row_numbers()))

    def row_numbers(self) -> Sequence[int]:
        return self._rows if self._rows is not None else self._store.live()


class MemoryStore:
    """Transactions of one ledger in columns; see the module docstring. Not locked: the ledger is.

    Rows keep their numbers for life. :meth:`drop_oldest` forgets the oldest row (retention): its index
    entries go at once, and the columns' dead front is cut off once it is as long as the live part, so the
    cost per dropped row stays constant.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.players: list[Owner] = []  # player number -> player
        self.nums = array("q")  # WIDTH integers per row
        self.time = array("d")
        self.status = array("B")
        self.ids = Texts()
        self.rounds = Texts()
        self.first = 0  # the row at index 0 of the columns
        self.base = 0  # the oldest kept row (rows before it were dropped)
        self.kinds = Interned(limit=2**8)
        self.statuses = Interned("applied", limit=2**8)
        self.scopes = Interned("", limit=2**16)
        self.games = Interned()
        self.exact: dict[int, tuple[Decimal, Decimal, Decimal]] = {}  # rows whose money needs Decimal
        self._index: dict[tuple[str, str, str], TextIndex] = {}  # (dialect, tenant, scope)
        self._round_index: dict[int, TextIndex] = {}  # player number -> round -> its first tracked row
        self._round_next: dict[int, int] = {}  # tracked row -> next tracked row of the same round
        self.reversed_by: dict[int, int] = {}  # debit row -> the reversal's row
        self.refunded_dropped: dict[int, Decimal] = {}  # reversal row -> debits it refunded, since dropped
        self._ref_row: dict[int, int] = {}  # row -> the row its ref names (same dialect, tenant, scope)
        self._ref_text: dict[int, str] = {}  # row -> a ref that named no (kept) transaction
        self._loose: dict[TxnKey, list[int]] = {}  # such refs by what they name
        self._referrer: dict[int, int] = {}  # row -> the first row whose ref names it
        self._referrer_next: dict[int, int] = {}  # referring row -> the next row referring to the same one

    def __len__(self) -> int:
        return len(self.time) - (self.base - self.first)

    @property
    def next_row(self) -> int:
        return self.first + len(self.time)

    def live(self) -> range:
        """The kept rows, oldest first."""
        return range(self.base, self.next_row)

    def at(self, row: int) -> int:
        """Where ``row``'s integers start in :attr:`nums`."""
        return (row - self.first) * WIDTH

    # players

    def enrol(self, player: Owner) -> None:
        """Give a new player its number and an empty history."""
        player.no = len(self.players)
        player.rows = array("Q")
        player.history = Rows(self, player.rows)
        self.players.append(player)

    # reads

    def view(self, row: int) -> Transaction:
        return Transaction(self, row)

    def log(self) -> Rows:
        return Rows(self)

    def find_row(self, dialect: str, tenant: str, scope: str, txn_id: str) -> int | None:
        index = self._index.get((dialect, tenant, scope))
        return index.get(txn_id) if index is not None else None

    def find(self, dialect: str, tenant: str, scope: str, txn_id: str) -> Transaction | None:
        row = self.find_row(dialect, tenant, scope, txn_id)
        return None if row is None else Transaction(self, row, None, txn_id)

    def round(self, player: Owner, round_id: str) -> list[Transaction]:
        index = self._round_index.get(player.no)
        row = index.get(round_id) if index is not None else None
        found = []
        while row is not None:
            found.append(Transaction(self, row))
            row = self._round_next.get(row)
        return found

    def tracked_rounds(self) -> Iterator[tuple[Owner, list[Transaction]]]:
        """Every tracked round with more than one transaction (one alone breaks no round rule)."""
        followers = set(self._round_next.values())
        for first, nxt in self._round_next.items():
            if first in followers:
                continue  # not the head of its chain
            rows = [first, nxt]
            while rows[-1] in self._round_next:
                rows.append(self._round_next[rows[-1]])
            yield self.players[self.nums[self.at(first) + PLAYER]], [Transaction(self, r) for r in rows]

    def referring(self, txn: Transaction) -> list[Transaction]:
        rows: list[int] = []
        row = self._referrer.get(txn.row)
        while row is not None:
            rows.append(row)
            row = self._referrer_next.get(row)
        rows += self._loose.get((txn.dialect, txn.tenant, txn.scope, txn.id), [])
        return [Transaction(self, r) for r in sorted(rows)]

    def ref_of(self, row: int) -> str | None:
        target = self._ref_row.get(row)
        if target is not None:
            return self.ids[target]
        return self._ref_text.get(row)

    def money(self, row: int) -> tuple[Decimal, Decimal, Decimal]:
        """(debit, credit, balance after) of a row."""
        exact = self.exact.get(row)
        if exact is not None:
            return exact
        at = self.at(row)
        return decimal(self.nums[at + DEBIT]), decimal(self.nums[at + CREDIT]), decimal(self.nums[at + AFTER])

    # self-check scans (Ledger.invariants)

    def net(self, player: Owner) -> Decimal:
        """The sum of the player's kept transactions' effects on its balance."""
        nums, first = self.nums, self.first
        total = decimal(
            sum(nums[(r - first) * WIDTH + CREDIT] - nums[(r - first) * WIDTH + DEBIT] for r in player.rows)
        )
        for row, (d, c, _) in self.exact.items():
            if nums[self.at(row) + PLAYER] == player.no:
                total += c - d
        return total

    def repeated_ids(self) -> list[TxnKey]:
        """(dialect, tenant, scope, id) of every indexed transaction the index does not lead to: one that
        shares its key with an earlier one."""
        repeated: list[TxnKey] = []
        nums = self.nums
        for row in self.live():
            at = self.at(row)
            meta = nums[at + META]
            if not meta >> 24 & INDEXED:
                continue
            player, scope = self.players[nums[at + PLAYER]], self.scopes.texts[meta >> 8 & 0xFFFF]
            txn_id = self.ids[row]
            if self._index[(player.dialect, player.tenant, scope)].get(txn_id) != row:
                repeated.append((player.dialect, player.tenant, scope, txn_id))
        return repeated

    def reversals(self) -> Iterator[tuple[Transaction, Transaction]]:
        """(refunded debit, the reversal that refunded it)."""
        for row, by in self.reversed_by.items():
            yield Transaction(self, row), Transaction(self, by)

    def references(self) -> Iterator[tuple[Transaction, Transaction]]:
        """(transaction, the transaction its ref names)."""
        for row, target in self._ref_row.items():
            yield Transaction(self, row), Transaction(self, target)

    def of_kinds(self, kinds: tuple[str, ...]) -> Iterator[Transaction]:
        numbers = {self.kinds.numbers[k] for k in kinds if k in self.kinds.numbers}
        nums = self.nums
        return (Transaction(self, row) for row in self.live() if nums[self.at(row) + META] & 0xFF in numbers)

    # writes

    def unenrol(self, player: Owner) -> None:
        """Take back the number of a player that has no transactions (refused creation, redefinition)."""
        if not player.rows and self.players and self.players[-1] is player:
            self.players.pop()

    def append(
        self,
        player: Owner,
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
    ) -> Transaction:
        row = self.next_row
        flags = INDEXED if indexed else 0
        game_no = 0
        if game is not None:
            flags |= HAS_GAME
            game_no = self.games.number(game)
        if fingerprint is not None:
            flags |= HAS_FINGERPRINT
        if round_id is not None:
            flags |= HAS_ROUND
        meta = self.kinds.number(kind) | self.scopes.number(scope) << 8 | flags << 24
        d, c, a = units(debit), units(credit), units(after)
        if d is None or c is None or a is None:
            self.exact[row] = (debit, credit, after)
            d = c = a = 0
        self.nums.extend((player.no, meta, game_no, d, c, a, fingerprint or 0))
        self.time.append(now)
        self.status.append(0)
        self.ids.append(txn_id)
        self.rounds.append(round_id or "")
        player.rows.append(row)
        if indexed:
            key = (player.dialect, player.tenant, scope)
            index = self._index.get(key)
            if index is None:
                index = self._index[key] = TextIndex(self.ids)
            index.add(txn_id, row)
            if track_round and round_id is not None:
                self._track(player, round_id, row)
            if ref is not None:
                self._refer(player, scope, ref, row)
        elif ref is not None:
            self._ref_text[row] = ref
        return Transaction(self, row, (debit, credit, after), txn_id)

    def mark_reversed(self, target: Transaction, by: Transaction, status: str) -> None:
        self.status[target.row - self.first] = self.statuses.number(status)
        self.reversed_by[target.row] = by.row

    def _track(self, player: Owner, round_id: str, row: int) -> None:
        index = self._round_index.get(player.no)
        if index is None:
            index = self._round_index[player.no] = TextIndex(self.rounds)
        last = index.get(round_id)
        if last is None:
            index.add(round_id, row)
            return
        while last in self._round_next:
            last = self._round_next[last]
        self._round_next[last] = row

    def _refer(self, player: Owner, scope: str, ref: str, row: int) -> None:
        target = self.find_row(player.dialect, player.tenant, scope, ref)
        if target is None:
            self._loosen(row, (player.dialect, player.tenant, scope, ref))
            return
        self._ref_row[row] = target
        last = self._referrer.get(target)
        if last is None:
            self._referrer[target] = row
            return
        while last in self._referrer_next:
            last = self._referrer_next[last]
        self._referrer_next[last] = row

    def _loosen(self, row: int, key: TxnKey) -> None:
        """``row``'s ref names ``key``, which no kept row holds."""
        self._ref_text[row] = key[3]
        self._loose.setdefault(key, []).append(row)

    # retention

    def oldest_time(self) -> float | None:
        return self.time[self.base - self.first] if len(self) else None

    def drop_oldest(self) -> tuple[TxnKey | None, Owner, Decimal]:
        """Forget the oldest kept row: (its id key if it was indexed, its owner, its effect on the balance).
        Whatever still refers to it keeps the id as text; a reversal it was the target of keeps the amount
        it refunded (:attr:`refunded_dropped`)."""
        row = self.base
        at = self.at(row)
        nums = self.nums
        meta = nums[at + META]
        player = self.players[nums[at + PLAYER]]
        debit, credit, _ = self.money(row)
        scope = self.scopes.texts[meta >> 8 & 0xFFFF]
        txn_id = self.ids[row]
        key: TxnKey | None = None
        if meta >> 24 & INDEXED:
            key = (player.dialect, player.tenant, scope, txn_id)
            self._index[(player.dialect, player.tenant, scope)].move(txn_id, row, None)
            if meta >> 24 & HAS_ROUND:
                self._untrack(player, row)
        self._unrefer(row, key)
        by = self.reversed_by.pop(row, None)
        if by is not None:
            self.refunded_dropped[by] = self.refunded_dropped.get(by, ZERO) + debit
        self.refunded_dropped.pop(row, None)
        self.exact.pop(row, None)
        if player.rows and player.rows[0] == row:
            del player.rows[0]
        self.base = row + 1
        dead = self.base - self.first
        if dead >= 4096 and dead >= len(self):  # cut the dead front: amortised, a memmove per half
            del self.nums[: dead * WIDTH]
            del self.time[:dead]
            del self.status[:dead]
            self.ids.cut_before(self.base)
            self.rounds.cut_before(self.base)
            self.first = self.base
        return key, player, credit - debit

    def _untrack(self, player: Owner, row: int) -> None:
        """A dropped row is the oldest of its round's chain: the round now starts at the next one."""
        index = self._round_index.get(player.no)
        if index is None:
            return
        nxt = self._round_next.pop(row, None)
        index.move(self.rounds[row], row, nxt)
        if not index:
            del self._round_index[player.no]

    def _unrefer(self, row: int, key: TxnKey | None) -> None:
        # rows whose ref names this one keep its id as text (they are newer: still kept)
        referrer = self._referrer.pop(row, None)
        while referrer is not None:
            self._ref_row.pop(referrer, None)
            if key is not None:
                self._loosen(referrer, key)
            referrer = self._referrer_next.pop(referrer, None)
        # its own ref named an older row (dropped already, so now loose text) or nothing kept
        self._ref_row.pop(row, None)
        self._referrer_next.pop(row, None)
        ref = self._ref_text.pop(row, None)
        if ref is not None and key is not None:
            loose_key = (key[0], key[1], key[2], ref)
            rows = self._loose.get(loose_key)
            if rows is not None:
                with contextlib.suppress(ValueError):
                    rows.remove(row)
                if not rows:
                    del self._loose[loose_key]
