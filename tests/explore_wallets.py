"""Small operator wallets for ``certify --explore``: both seamless protocols over integer cents, correct by
default (every money call runs under the player's lock; ids are idempotent; an undo that comes first voids
its debit), with two defects that only random histories tend to find:

  lost_update  reads the balance, awaits (a database round trip), writes it back, with no lock: calls on
               one player at once lose each other's updates
  truncation   converts amounts with ``int(float(x) * 100)``: 0.29 becomes 28 cents

Signatures are not checked: explore judges money, the cases judge authentication.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from typing import Any

from aiohttp import web

from simulator import jsonio

DEFECTS = ("lost_update", "truncation")
START = 100_000  # cents
ROUND_TRIP = 0.02  # seconds between reading and writing a balance


class Refused(Exception):
    def __init__(self, code: Any, status: int = 400) -> None:
        self.code, self.status = code, status


class Books:
    def __init__(self, defects: frozenset[str]) -> None:
        assert not set(defects) - set(DEFECTS), defects
        self.defects = defects
        self.cents: dict[str, int] = defaultdict(lambda: START)
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.answers: dict[str, Any] = {}  # transaction id -> the answer, replayed for a repeat
        self.debits: dict[str, list[Any]] = {}  # withdraw id / round -> [cents, state]
        self.void: set[str] = set()  # withdraw ids / rounds whose undo came first

    def to_cents(self, amount: Decimal) -> int:
        if "truncation" in self.defects:
            return int(float(amount) * 100)
        return int(amount * 100)

    def shown(self, player: str) -> Decimal:
        return Decimal(self.cents[player]).scaleb(-2)

    async def move(self, player: str, cents: int) -> None:
        balance = self.cents[player]
        await asyncio.sleep(ROUND_TRIP)  # the database round trip
        self.cents[player] = balance + cents

    async def once(self, player: str, txn: str, work: Any) -> Any:
        """Run ``work`` for a new id (under the player's lock unless lost_update), replay a known one."""
        if "lost_update" in self.defects:
            return self.answers[txn] if txn in self.answers else await self._stored(txn, work)
        async with self.locks[player]:
            return self.answers[txn] if txn in self.answers else await self._stored(txn, work)

    async def _stored(self, txn: str, work: Any) -> Any:
        answer = await work()
        self.answers[txn] = answer
        return answer

    async def debit(self, player: str, key: str, amount: Decimal, late: Any) -> None:
        if key in self.void:
            raise Refused(late)
        cents = self.to_cents(amount)
        if self.cents[player] < cents:
            raise Refused("funds")
        await self.move(player, -cents)
        self.debits[key] = [cents, "standing"]

    async def credit(self, player: str, key: str, amount: Decimal, missing: Any) -> None:
        debit = self.debits.get(key)
        if debit is None or debit[1] != "standing":
            raise Refused(missing)
        await self.move(player, self.to_cents(amount))
        debit[1] = "settled"

    async def undo(self, player: str, key: str, settled: Any) -> bool:
        """Refund the debit once; False when there was none (it is voided)."""
        debit = self.debits.get(key)
        if debit is None:
            self.void.add(key)
            return False
        if debit[1] == "settled":
            raise Refused(settled)
        if debit[1] == "standing":
            await self.move(player, debit[0])
            debit[1] = "undone"
        return True


FIZZY = {"funds": "ERROR_TRANSACTION_INSUFFICIENT_FUNDS"}


async def fizzy(books: Books, request: web.Request) -> web.Response:
    kind = request.path.rsplit("/", 1)[-1]
    f = jsonio.loads(await request.read())
    player = f["playerId"]

    async def work() -> Any:
        if kind == "withdraw":
            await books.debit(player, f["transactionId"], f["amount"], "ERROR_BAD_REQUEST")
        elif kind == "deposit":
            await books.credit(player, f["withdrawTransactionId"], f["amount"], "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND")
        elif not await books.undo(player, f["withdrawTransactionId"], "ERROR_BAD_REQUEST"):
            raise Refused("ERROR_ROLLBACK_TRANSACTION_NOT_FOUND")
        return {"balance": books.shown(player), "currency": "EUR"}

    try:
        if kind == "balance":
            return web.json_response({"balance": books.shown(player), "currency": "EUR"}, dumps=jsonio.dumps)
        return web.json_response(await books.once(player, f["transactionId"], work), dumps=jsonio.dumps)
    except Refused as exc:
        code = FIZZY.get(exc.code, exc.code)
        return web.json_response({"code": code, "description": code}, status=exc.status)


async def ambslot(books: Books, request: web.Request) -> web.Response:
    kind = request.path.strip("/")
    f = jsonio.loads(await request.read())
    player = f["username"]

    async def work() -> Any:
        before = books.shown(player)
        if kind == "bet":
            await books.debit(player, f["roundId"], f["amount"], 997)
        elif kind == "payout":
            await books.credit(player, f["roundId"], f["amount"], 997)
        else:
            await books.undo(player, f["roundId"], 997)
        after = books.shown(player)
        data = {"username": player, "wallet": {"balance": after}, "balance": {"before": before, "after": after}}
        return {"status": {"code": 0, "message": "Success"}, "data": {**data, "refId": f["transactionId"]}}

    try:
        if kind == "balance":
            data = {"username": player, "wallet": {"balance": books.shown(player)}}
            return web.json_response({"status": {"code": 0, "message": "Success"}, "data": data}, dumps=jsonio.dumps)
        return web.json_response(await books.once(player, f["transactionId"], work), dumps=jsonio.dumps)
    except Refused as exc:
        code = 800 if exc.code == "funds" else exc.code
        return web.json_response({"status": {"code": code, "message": "refused"}}, dumps=jsonio.dumps)


def app(defects: frozenset[str] = frozenset()) -> web.Application:
    books = Books(defects)
    application = web.Application()

    async def fizzy_route(request: web.Request) -> web.Response:
        return await fizzy(books, request)

    async def amb_route(request: web.Request) -> web.Response:
        return await ambslot(books, request)

    for name in ("balance", "withdraw", "deposit", "rollback"):
        application.router.add_post(f"/wallet/{name}", fizzy_route)
    for name in ("balance", "bet", "payout", "cancel"):
        application.router.add_post(f"/{name}", amb_route)
    return application
