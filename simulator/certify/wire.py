"""The provider's side of each seamless wallet, as the certify runner needs it: build a request with the
reference client's field builders and signer (``simulator/dialects/client.py``, one definition of each wire format),
and read an answer into an :class:`~simulator.certify.core.Answer`.

Both dialects are spoken through the same verbs, so most cases are written once (``flows.py``):
``debit`` (Fizzy withdraw, AMBSlot bet), ``credit`` (deposit, payout) and ``undo`` (rollback, cancel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import aiohttp

from simulator.certify.core import Answer, Exchange, shown
from simulator.certify.target import Target
from simulator.dialects.client import AmbslotClient, FizzyClient, Prepared
from simulator.dialects.providers.ambslot import DESCRIPTION as AMBSLOT
from simulator.dialects.providers.fizzy import DESCRIPTION as FIZZY

SENSITIVE_HEADERS = frozenset({"signature", "authorization", "x-signature", "cookie", "proxy-authorization"})


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers fit to print: signatures and credentials keep their first 6 characters."""
    return {k: (v[:6] + "...(redacted)" if k.lower() in SENSITIVE_HEADERS and v else v) for k, v in headers.items()}


@dataclass
class Request:
    """What a case sends: an endpoint and the fields of its JSON body (kept, so a repeat is byte-identical)."""

    path: str
    fields: dict[str, Any]
    amount: Decimal = Decimal(0)
    round_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def txn(self) -> str:
        return str(self.fields.get("transactionId", ""))


def number(value: Any) -> Decimal | None:
    """A balance as the wallet wrote it: JSON numbers, and numeric strings (balance.ok warns about those)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


class Wallet:
    """One dialect's wire, seen from the provider. Subclasses fill the paths, codes and builders."""

    dialect: ClassVar[str]
    DEBIT: ClassVar[str]
    CREDIT: ClassVar[str]
    UNDO: ClassVar[str]
    BALANCE: ClassVar[str]
    debit_word: ClassVar[str]  # "withdraw" / "bet", for messages
    undo_word: ClassVar[str]
    INSUFFICIENT: ClassVar[Any]  # documented code for a debit above the balance
    DUPLICATE: ClassVar[Any]  # our decision: same id, other payload
    LATE: ClassVar[Any]  # our decision: a debit arriving after its undo
    UNDO_UNKNOWN: ClassVar[Any]  # our decision: undo of a debit never seen (None: success, unchanged)
    PENDING: ClassVar[Any]  # "still processing that id": the provider retries
    RETRIED: ClassVar[frozenset[Any]]  # codes that make the provider retry (a permanent error must not use them)
    AUTH: ClassVar[Any]  # documented code for a caller that failed authentication
    UNKNOWN_PLAYER: ClassVar[Any]  # a permanent refusal of an unknown player (the simulator's)
    # where the provider's page and our choices differ per dialect (the flows ask these, never the name)
    INSUFFICIENT_DOCUMENTED: ClassVar[bool]  # the page lists a code for a debit above the balance
    PLAYER_FIELD: ClassVar[str]  # the debit builder's keyword naming the player
    REFUSES_SECOND_DEBIT_ON_ROUND: ClassVar[bool]  # the simulator's choice (the pages do not say)
    # the case that judges each verb on its own: a prerequisite or tidy-up step refused elsewhere names it
    DEBIT_CASE: ClassVar[str]
    CREDIT_CASE: ClassVar[str]
    UNDO_CASE: ClassVar[str]

    def __init__(self, target: Target, http: aiohttp.ClientSession) -> None:
        self.target = target
        self.http = http

    def prepare(self, request: Request) -> Prepared:
        raise NotImplementedError

    def balance(self, **extra: Any) -> Request:
        raise NotImplementedError

    def debit(self, amount: Decimal, txn: str, round_id: str, **extra: Any) -> Request:
        raise NotImplementedError

    def credit(self, debit: Request, amount: Decimal, txn: str, **extra: Any) -> Request:
        raise NotImplementedError

    def undo(self, debit: Request, txn: str, **extra: Any) -> Request:
        raise NotImplementedError

    def read(self, http: int, body: Any, exchange: Exchange) -> Answer:
        raise NotImplementedError

    def retried(self, answer: Answer) -> bool:
        """The answer tells the provider to try again later (HTTP 5xx, a timeout code)."""
        return not answer.ok and (answer.http >= 500 or answer.code in self.RETRIED)


class FizzyWallet(Wallet):
    dialect = "fizzy"
    DEBIT, CREDIT, UNDO, BALANCE = "/wallet/withdraw", "/wallet/deposit", "/wallet/rollback", "/wallet/balance"
    debit_word, undo_word = "withdraw", "rollback"
    INSUFFICIENT = FIZZY.neutral["insufficient_funds"]
    DUPLICATE = FIZZY.neutral["duplicate"]
    UNKNOWN_PLAYER = FIZZY.neutral["unknown_player"]
    LATE = FIZZY.neutral["bad_request"]
    UNDO_UNKNOWN = "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND"
    PENDING = FIZZY.neutral["pending"]
    RETRIED = frozenset({FIZZY.neutral["timeout"]})
    AUTH = FIZZY.neutral["auth_failed"]
    NO_WITHDRAW = "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND"
    INSUFFICIENT_DOCUMENTED, PLAYER_FIELD, REFUSES_SECOND_DEBIT_ON_ROUND = True, "player", False
    DEBIT_CASE, CREDIT_CASE, UNDO_CASE = "withdraw.ok", "deposit.ok", "rollback.ok"

    def __init__(self, target: Target, http: aiohttp.ClientSession) -> None:
        super().__init__(target, http)
        self.client = FizzyClient(target.wallet_url, target.public_key, target.private_key, session=http)

    def _common(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """currency, session and game of the target, unless ``extra`` names its own (they leave ``extra``)."""
        t = self.target
        common = {"currency": t.currency, "session": t.session, "game": t.game}
        for key in common:
            if extra is not None and key in extra:
                common[key] = extra.pop(key)
        return common

    def prepare(self, request: Request) -> Prepared:
        return self.client.prepare(request.path, request.fields)

    def balance(self, **extra: Any) -> Request:
        t = self.target
        fields = {"playerId": extra.pop("player", t.player), "sessionId": t.session, "currency": t.currency, **extra}
        return Request(self.BALANCE, fields)

    def debit(self, amount: Decimal, txn: str, round_id: str, **extra: Any) -> Request:
        player = extra.pop("player", self.target.player)
        common = self._common(extra)
        fields = FizzyClient.money(player, amount, txn=txn, round_id=round_id, **common, **extra)
        return Request(self.DEBIT, fields, amount, round_id)

    def credit(self, debit: Request, amount: Decimal, txn: str, **extra: Any) -> Request:
        t = self.target
        fields = FizzyClient.deposit_fields(
            t.player, amount, debit.txn, txn=txn, round_id=debit.round_id, **self._common(extra), **extra
        )
        return Request(self.CREDIT, fields, amount, debit.round_id)

    def undo(self, debit: Request, txn: str, **extra: Any) -> Request:
        t = self.target
        fields = FizzyClient.rollback_fields(
            extra.pop("player", t.player),
            debit.txn,
            txn=txn,
            round_id=debit.round_id,
            session=extra.pop("session", t.session),
            game=t.game,
            **extra,
        )
        return Request(self.UNDO, fields, debit.amount, debit.round_id)

    def read(self, http: int, body: Any, exchange: Exchange) -> Answer:
        is_dict = isinstance(body, dict)
        ok = http == 200 and is_dict and "balance" in body
        code = body.get("code") if is_dict and not ok else None
        raw = body.get("balance") if ok else None
        unreadable = ""
        if http == 200 and not ok:
            unreadable = f"HTTP 200 without a balance (certify looked for `balance` in {shown(body, 200)})"
        return Answer(http, body, ok, code, number(raw), exchange, unreadable)


class AmbslotWallet(Wallet):
    dialect = "ambslot"
    DEBIT, CREDIT, UNDO, BALANCE = "/bet", "/payout", "/cancel", "/balance"
    debit_word, undo_word = "bet", "cancel"
    INSUFFICIENT = AMBSLOT.neutral["insufficient_funds"]
    DUPLICATE = AMBSLOT.neutral["duplicate"]
    UNKNOWN_PLAYER = AMBSLOT.neutral["unknown_player"]
    LATE = AMBSLOT.neutral["bad_request"]
    UNDO_UNKNOWN = None
    PENDING = AMBSLOT.neutral["pending"]
    RETRIED = AMBSLOT.ambiguous  # "service not available" and AMBSlot's timeout outcomes
    AUTH = AMBSLOT.neutral["auth_failed"]
    SETTLE = "/settle"
    LIMIT_MS = 5000  # AMBSlot's document: answers within 5 seconds
    INSUFFICIENT_DOCUMENTED, PLAYER_FIELD, REFUSES_SECOND_DEBIT_ON_ROUND = False, "username", True
    DEBIT_CASE, CREDIT_CASE, UNDO_CASE = "bet.ok", "payout.ok", "cancel.ok"

    def __init__(self, target: Target, http: aiohttp.ClientSession) -> None:
        super().__init__(target, http)
        self.client = AmbslotClient(target.wallet_url, target.agent, session=http)
        #: whose transactionId a cancel carries: its own (seed 003: "unique" per transaction) or the bet's
        #: (how real aggregators key cancels); the runner switches to "bet" once if only that one works
        self.cancel_id = target.cancel_id

    def prepare(self, request: Request) -> Prepared:
        return self.client.prepare(request.path, request.fields)

    def balance(self, **extra: Any) -> Request:
        return Request(self.BALANCE, {"username": self.target.username, "agentId": self.target.agent, **extra})

    def _fields(self, round_id: str, amount: Decimal, txn: str, **extra: Any) -> dict[str, Any]:
        t = self.target
        username = extra.pop("username", t.username)
        return self.client.fields(username, round_id, amount, txn=txn, currency=t.currency, game=t.game, **extra)

    def debit(self, amount: Decimal, txn: str, round_id: str, **extra: Any) -> Request:
        return Request(self.DEBIT, self._fields(round_id, amount, txn, **extra), amount, round_id)

    def credit(self, debit: Request, amount: Decimal, txn: str, **extra: Any) -> Request:
        t = self.target
        end = extra.pop("isEndRound", True)
        fields = self.client.payout_fields(
            t.username, debit.round_id, amount, debit.amount, txn=txn, currency=t.currency, game=t.game, **extra
        )
        fields["isEndRound"] = end
        return Request(self.CREDIT, fields, amount, debit.round_id)

    def settle(self, bet: Decimal, win: Decimal, txn: str, round_id: str) -> Request:
        t = self.target
        fields = self.client.settle_fields(t.username, round_id, bet, win, txn=txn, currency=t.currency, game=t.game)
        return Request(self.SETTLE, fields, bet, round_id, {"win": win})

    def undo(self, debit: Request, txn: str, **extra: Any) -> Request:
        """A cancel of ``debit``'s round; it carries its own ``txn`` or, with ``--cancel-id bet``, the bet's id.
        ``amount`` in ``extra`` replaces the stake the cancel carries (the refund is the stored bet anyway)."""
        amount = extra.pop("amount", debit.amount)
        own = txn if self.cancel_id == "own" or not debit.txn else debit.txn
        fields = self._fields(debit.round_id, amount, own, isEndRound=True, **extra)
        return Request(self.UNDO, fields, debit.amount, debit.round_id, {"own_txn": txn, "bet_txn": debit.txn})

    def read(self, http: int, body: Any, exchange: Exchange) -> Answer:
        status = body.get("status") if isinstance(body, dict) else None
        code = status.get("code") if isinstance(status, dict) else None
        if isinstance(code, Decimal) and code.is_finite() and code == code.to_integral_value():
            code = int(code)  # the parser bounds every number's size, so this conversion is cheap
        data = body.get("data") if isinstance(body, dict) else None
        ok = http == 200 and code == 0 and isinstance(data, dict)
        raw, unreadable = None, ""
        if ok and isinstance(data, dict):
            wallet = data.get("wallet")
            raw = wallet.get("balance") if isinstance(wallet, dict) else None
            if raw is None and not isinstance(data.get("balance"), dict):
                raw = data.get("balance")  # a /balance answer may put it at data.balance
        elif http == 200 and code == 0:
            unreadable = f"status 0 without a `data` object (certify got {shown(body, 200)})"
        if ok and number(raw) is None:
            ok = False
            unreadable = (
                "status 0, but certify found no balance at data.wallet.balance nor data.balance "
                f"(it got {shown(data, 200)})"
            )
        return Answer(http, body, ok, code, number(raw), exchange, unreadable)


WALLETS: dict[str, type[Wallet]] = {"fizzy": FizzyWallet, "ambslot": AmbslotWallet}
