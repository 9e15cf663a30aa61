"""A small operator wallet for the certify tests: both seamless protocols, correct by default, with defects
that can be switched on one by one to prove that certify catches each with the case that names it, and a
"different but valid" mode that must get no failure and no warning.

Defects (each one a wallet bug certify must fail, naming the case):
  auth           Fizzy: ignores Public-Key and Signature; AMBSlot: accepts any agent
  repeats        ignores transaction ids (and AMBSlot's one bet per round): every repeat is applied again
  race           yields to the event loop between checking a debit and applying it
  floats         keeps balances as float and writes them as such
  truncate       reads amounts as int(float(x) * 100) cents: 0.29 becomes 0.28
  late           ignores tombstones: debits a withdraw/bet arriving after its rollback/cancel
  ghost_deposit  Fizzy: credits a deposit whose withdraw does not exist
  cancel_amount  AMBSlot: a cancel refunds the amount it carries, not the stored bet
  one_payout     AMBSlot: a round closes at its first payout; a second payout is refused
  round_key      idempotency keyed on the round: a second debit on a round replays the first answer
  retry_unknown  an unknown player is answered with a retry code (500 ERROR_TIMEOUT, 1601)
  refund_twice   a second rollback/cancel under a new id refunds again
  unknown_500    a rollback of an unknown withdraw answers HTTP 500 (an unknown cancel 999)
  no_undo        refuses every rollback/cancel of a known debit (cases needing one as a step are inconclusive)
  slow           answers credits (deposit, payout) after SLOW seconds
Risks (a warning, not a failure):
  strict         refuses any field it does not know
Allowed by the documents, different from the simulator's decisions ("other", the different-but-valid
wallet): players must exist; sessions are bound to their player; a repeat is refused as a duplicate
instead of replayed; a reused id with another amount gets ERROR_BAD_REQUEST (997); an unknown rollback
answers 200 (an unknown cancel 997); a late debit is refused as a duplicate; a second rollback is refused;
a second withdraw on a round is refused, a second bet on a round accepted; AMBSlot cancels are keyed on the
bet's transactionId; /settle is not implemented (404); /balance answers data.balance; insufficient funds
on AMBSlot answers 997.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from simulator import jsonio
from simulator.dialects.crypto import fizzy_signature, same_hex
from simulator.dialects.fields import fingerprint

DEFECTS = (
    "auth",
    "repeats",
    "race",
    "floats",
    "truncate",
    "strict",
    "slow",
    "late",
    "ghost_deposit",
    "cancel_amount",
    "one_payout",
    "round_key",
    "retry_unknown",
    "refund_twice",
    "unknown_500",
    "no_undo",
    "other",
)
SLOW = 0.3
RACE_WAIT = 0.03
PUBLIC_KEY, PRIVATE_KEY, AGENT = "demo-public-key", "demo-private-key", "demo"
START = Decimal(1000)
#: the players the wallet knows when it does not create players on first sight, with their session
KNOWN = {"cert-p1": "cert-s1", "cert-m1": "", "blocked-1": "blocked-s1"}
BLOCKED = {"blocked-1"}

FIZZY_FIELDS = {
    "balance": {"playerId", "sessionId", "currency"},
    "withdraw": {"transactionId", "playerId", "sessionId", "currency", "gameId", "gameRoundId", "amount",
                 "cashAmount", "jackpotAmount", "isGameRoundFinished", "isFeatureBuy", "freeSpinsCampaignId"},
    "rollback": {"transactionId", "withdrawTransactionId", "playerId", "sessionId", "gameId", "gameRoundId",
                 "currency", "freeSpinsCampaignId"},
}  # fmt: skip
FIZZY_FIELDS["deposit"] = FIZZY_FIELDS["withdraw"] | {"withdrawTransactionId", "isForceComplete", "isFreeSpinsConsumed"}
AMB_COMMON = {"username", "agent", "game", "gameId", "roundId", "amount", "currency", "transactionId", "timestamp",
              "isEndRound", "featureBuy"}  # fmt: skip
AMB_FIELDS = {
    "balance": {"username", "agentId"},
    "bet": AMB_COMMON,
    "payout": AMB_COMMON | {"turnover"},
    "settle": AMB_COMMON | {"bet", "winlose", "turnover"},
    "cancel": AMB_COMMON,
}


class Refused(Exception):
    def __init__(self, code: Any, status: int = 400) -> None:
        self.code, self.status = code, status


@dataclass
class Txn:
    kind: str
    fp: int
    answer: Any
    amount: Decimal
    round_id: str = ""
    undone: bool = False
    settled: bool = False


@dataclass
class Wallet:
    defects: frozenset[str]
    balances: dict[str, Any] = field(default_factory=dict)
    txns: dict[str, Txn] = field(default_factory=dict)
    cancels: dict[str, Txn] = field(default_factory=dict)  # "other": cancels keyed apart (they carry the bet's id)
    tombstones: set[str] = field(default_factory=set)  # Fizzy withdraw ids, AMBSlot rounds
    rounds: dict[str, list[Txn]] = field(default_factory=dict)
    held: int = 0
    company: asyncio.Event = field(default_factory=asyncio.Event)

    def has(self, defect: str) -> bool:
        return defect in self.defects

    def balance(self, player: str) -> Any:
        if player not in self.balances:
            self.balances[player] = float(START) if self.has("floats") else START
        return self.balances[player]

    def amount(self, value: Any) -> Decimal:
        if self.has("truncate") and isinstance(value, Decimal):
            return Decimal(int(float(value) * 100)) / 100
        return Decimal(value)

    def move(self, player: str, amount: Decimal) -> None:
        value = float(amount) if self.has("floats") else amount
        self.balances[player] = self.balance(player) + value

    def check_player(self, player: str, session: str | None = None) -> None:
        """Unknown players are created on first sight, unless ``other`` (refused) or ``retry_unknown``."""
        if player in KNOWN:
            if self.has("other") and session is not None and KNOWN[player] and session != KNOWN[player]:
                raise Refused("session")
            return
        if self.has("retry_unknown"):
            raise Refused("pending", 500)
        if self.has("other"):
            raise Refused("unknown_player")

    def seen(self, txn: str, kind: str, fp: int) -> Any:
        """The stored answer of a repeat, Refused for a reused id, None for a new id."""
        known = (self.cancels if kind == "cancel" and self.has("other") else self.txns).get(txn)
        if known is None or self.has("repeats"):
            return None
        if known.kind != kind or known.fp != fp:
            raise Refused("bad" if self.has("other") and known.kind == kind else "dup")
        if self.has("other"):
            raise Refused("dup")
        return known.answer

    async def debit(self, player: str, amount: Decimal) -> None:
        if self.balance(player) < amount:
            raise Refused("funds")
        if self.has("race"):  # checked, then applied later: parallel debits all pass the same check
            await self._crowd()
        self.move(player, -amount)

    async def _crowd(self) -> None:
        """Hold a debit between its check and its write until a second one is held too (or RACE_WAIT passes),
        so the race happens whatever the order the parallel requests arrive in."""
        self.held += 1
        if self.held > 1:
            self.company.set()
        try:
            await asyncio.wait_for(self.company.wait(), RACE_WAIT)
        except TimeoutError:
            pass
        finally:
            self.held -= 1
            if not self.held:
                self.company.clear()

    def checked(self, body: bytes, known: set[str]) -> dict[str, Any]:
        fields = jsonio.loads(body)
        if not isinstance(fields, dict):
            raise Refused("bad")
        if self.has("strict") and set(fields) - known:
            raise Refused("bad")
        return fields


FIZZY_CODES = {
    "dup": "ERROR_TRANSACTION_DUPLICATE",
    "funds": "ERROR_TRANSACTION_INSUFFICIENT_FUNDS",
    "bad": "ERROR_BAD_REQUEST",
    "no_withdraw": "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND",
    "no_rollback": "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND",
    "auth": "ERROR_INVALID_SIGNATURE",
    "pending": "ERROR_TIMEOUT",
    "unknown_error": "ERROR_UNKNOWN_ERROR",
    "unknown_player": "ERROR_BAD_REQUEST",
    "session": "ERROR_INVALID_SESSION",
    "blocked": "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
    "not_found": "ERROR_TRANSACTION_NOT_FOUND",
}
AMB_CODES = {"dup": 900, "funds": 800, "bad": 997, "auth": 998, "pending": 1601, "unknown_player": 908,
             "unknown_error": 999}  # fmt: skip


async def fizzy(wallet: Wallet, request: web.Request) -> web.Response:
    kind = request.path.rsplit("/", 1)[-1]
    body = await request.read()
    try:
        if not wallet.has("auth"):
            url = f"{request.scheme}://{request.host}{request.raw_path}"
            expected = fizzy_signature(PRIVATE_KEY, request.method, url, body)
            if request.headers.get("Public-Key") != PUBLIC_KEY or not same_hex(
                expected, request.headers.get("Signature", "")
            ):
                raise Refused("auth", 401)
        f = wallet.checked(body, FIZZY_FIELDS[kind])
        if kind == "deposit" and wallet.has("slow"):
            await asyncio.sleep(SLOW)
        player = f["playerId"]
        wallet.check_player(player, f.get("sessionId"))
        if kind != "balance":
            replay = wallet.seen(f["transactionId"], kind, fingerprint(f))
            if replay is not None:
                return web.json_response(replay, dumps=jsonio.dumps)
            await _fizzy_money(wallet, kind, f)
        answer: dict[str, Any] = {"balance": wallet.balance(player), "currency": "EUR"}
        if wallet.has("other"):
            answer["resolveTimestamp"] = 1767225600000
        if kind != "balance":
            wallet.txns[f["transactionId"]].answer = answer
        return web.json_response(answer, dumps=jsonio.dumps)
    except Refused as exc:
        code = FIZZY_CODES[exc.code]
        status = 401 if code == "ERROR_INVALID_SIGNATURE" else exc.status
        return web.json_response({"code": code, "description": code, "traceId": "t"}, status=status)


async def _fizzy_money(wallet: Wallet, kind: str, f: dict[str, Any]) -> None:
    player, txn, fp = f["playerId"], f["transactionId"], fingerprint(f)
    if kind == "withdraw":
        if player in BLOCKED:
            raise Refused("blocked")
        if txn in wallet.tombstones and not wallet.has("late"):
            raise Refused("dup" if wallet.has("other") else "bad")
        same_round = [t for t in wallet.rounds.get(f["gameRoundId"], []) if t.kind == "withdraw"]
        if same_round and wallet.has("round_key"):
            wallet.txns[txn] = Txn(kind, fp, same_round[0].answer, same_round[0].amount)
            return
        if same_round and wallet.has("other"):
            raise Refused("bad")
        amount = wallet.amount(f["amount"])
        await wallet.debit(player, amount)
        wallet.txns[txn] = Txn(kind, fp, None, amount, f["gameRoundId"])
        wallet.rounds.setdefault(f["gameRoundId"], []).append(wallet.txns[txn])
        return
    target = wallet.txns.get(f["withdrawTransactionId"])
    if target is None or target.kind != "withdraw":
        if kind == "deposit" and wallet.has("ghost_deposit"):
            wallet.move(player, wallet.amount(f["amount"]))
            wallet.txns[txn] = Txn(kind, fp, None, f["amount"])
            return
        if kind == "rollback":
            wallet.tombstones.add(f["withdrawTransactionId"])
            if wallet.has("unknown_500"):
                raise Refused("unknown_error", 500)
            if wallet.has("other"):
                wallet.txns[txn] = Txn(kind, fp, None, Decimal(0))
                return
        if kind == "deposit" and wallet.has("other"):
            raise Refused("not_found")
        raise Refused("no_withdraw" if kind == "deposit" else "no_rollback")
    if kind == "deposit":
        if target.undone:
            raise Refused("bad")
        target.settled = True
        wallet.move(player, wallet.amount(f["amount"]))
    else:
        if target.settled or wallet.has("no_undo"):
            raise Refused("bad")
        if target.undone and wallet.has("other"):
            raise Refused("bad")
        if not target.undone or wallet.has("repeats") or wallet.has("refund_twice"):
            wallet.move(player, target.amount)
        target.undone = True
    wallet.txns[txn] = Txn(kind, fp, None, f.get("amount", Decimal(0)))


def _amb_ok(wallet: Wallet, player: str, before: Any, txn: str) -> dict[str, Any]:
    after = wallet.balance(player)
    return {
        "status": {"code": 0, "message": "Success"},
        "data": {
            "username": player,
            "wallet": {"balance": after, "lastUpdate": "2026-01-01T00:00:00.000Z"},
            "balance": {"before": before, "after": after},
            "refId": txn,
        },
    }


async def ambslot(wallet: Wallet, request: web.Request) -> web.Response:
    kind = request.path.strip("/")
    if kind == "settle" and wallet.has("other"):
        raise web.HTTPNotFound()
    try:
        f = wallet.checked(await request.read(), AMB_FIELDS[kind])
        agent = f.get("agentId" if kind == "balance" else "agent")
        if agent != AGENT and not wallet.has("auth"):
            raise Refused("auth")
        if kind == "payout" and wallet.has("slow"):
            await asyncio.sleep(SLOW)
        player = f["username"]
        wallet.check_player(player)
        if kind == "balance":
            if wallet.has("other"):
                data: dict[str, Any] = {"balance": wallet.balance(player)}
            else:
                data = {"username": player, "wallet": {"balance": wallet.balance(player), "lastUpdate": "x"}}
            return web.json_response({"status": {"code": 0, "message": "Success"}, "data": data}, dumps=jsonio.dumps)
        replay = wallet.seen(f["transactionId"], kind, fingerprint(f))
        if replay is not None:
            return web.json_response(replay, dumps=jsonio.dumps)
        before = wallet.balance(player)
        stored = await _amb_money(wallet, kind, f)
        if isinstance(stored, dict):  # round_key: the first bet's answer
            return web.json_response(stored, dumps=jsonio.dumps)
        answer = _amb_ok(wallet, player, before, f["transactionId"])
        stored.answer = answer
        return web.json_response(answer, dumps=jsonio.dumps)
    except Refused as exc:
        code = AMB_CODES[exc.code] if isinstance(exc.code, str) else exc.code
        if code == 800 and wallet.has("other"):
            code = 997
        return web.json_response({"status": {"code": code, "message": "refused"}}, dumps=jsonio.dumps)


async def _amb_money(wallet: Wallet, kind: str, f: dict[str, Any]) -> Txn | dict[str, Any]:
    player, round_id, fp = f["username"], f["roundId"], fingerprint(f)
    round_txns = wallet.rounds.setdefault(round_id, [])
    txn = Txn(kind, fp, None, wallet.amount(f.get("bet", f["amount"])), round_id)
    if kind in ("bet", "settle"):
        if round_id in wallet.tombstones and not wallet.has("late"):
            raise Refused("dup" if wallet.has("other") else 997)
        bets = [t for t in round_txns if t.kind in ("bet", "settle")]
        if bets and wallet.has("round_key"):
            return bets[0].answer  # type: ignore[no-any-return]
        if bets and not wallet.has("repeats") and not wallet.has("other"):
            raise Refused("dup")
        await wallet.debit(player, txn.amount)
        if kind == "settle":
            wallet.move(player, wallet.amount(f["amount"]))
    elif kind == "payout":
        if wallet.has("one_payout") and any(t.kind == "payout" for t in round_txns):
            raise Refused(997)
        wallet.move(player, wallet.amount(f["amount"]))
    else:
        if any(t.kind in ("payout", "settle") for t in round_txns):
            raise Refused(997)
        bets = [t for t in round_txns if t.kind == "bet"]
        if wallet.has("other"):  # cancels are keyed on the bet's transactionId, like a real aggregator
            bets = [t for t in bets if wallet.txns.get(f["transactionId"]) is t]
            if not bets:
                if not round_txns:
                    wallet.tombstones.add(round_id)
                raise Refused(997)
        elif not bets:
            wallet.tombstones.add(round_id)
            if wallet.has("unknown_500"):
                raise Refused("unknown_error")
        if bets and wallet.has("no_undo"):
            raise Refused(997)
        for bet in bets:
            if not bet.undone or wallet.has("repeats") or wallet.has("refund_twice"):
                wallet.move(player, wallet.amount(f["amount"]) if wallet.has("cancel_amount") else bet.amount)
            bet.undone = True
        round_txns.append(txn)
        (wallet.cancels if wallet.has("other") else wallet.txns)[f["transactionId"]] = txn
        return txn
    round_txns.append(txn)
    wallet.txns[f["transactionId"]] = txn
    return txn


def app(defects: frozenset[str] = frozenset()) -> web.Application:
    unknown = set(defects) - set(DEFECTS)
    assert not unknown, f"unknown defects {unknown}"
    wallet = Wallet(frozenset(defects))
    application = web.Application()

    async def fizzy_route(request: web.Request) -> web.Response:
        return await fizzy(wallet, request)

    async def amb_route(request: web.Request) -> web.Response:
        return await ambslot(wallet, request)

    for name in ("balance", "withdraw", "deposit", "rollback"):
        application.router.add_post(f"/wallet/{name}", fizzy_route)
    for name in AMB_FIELDS:
        application.router.add_post(f"/{name}", amb_route)
    return application
