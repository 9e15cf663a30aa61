"""Fizzy Bubbly seamless wallet (PROTOCOLS.md section 2): the simulator plays the operator's wallet.

The signature is verified on the raw bytes before anything is parsed. Errors are HTTP 400/401/500 with
``{"code", "description", "traceId"}``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NoReturn

from aiohttp import web

from simulator import errors as e
from simulator import jsonio
from simulator.config import DEMO, FizzyBrand
from simulator.dialects import evidence
from simulator.dialects import fields as F
from simulator.dialects.base import Dialect, Rendered, log_id
from simulator.dialects.crypto import fizzy_signature, fizzy_string_to_sign, same_hex
from simulator.ledger import Player, Transaction
from simulator.ledger.core import ROLLED_BACK
from simulator.money import out
from simulator.operations import Operation
from simulator.server.forwarded import origin
from simulator.service import Simulator

MONEY_ENDPOINTS = ("withdraw", "deposit")


def is_demo(brand: FizzyBrand) -> bool:
    """Whether a brand's private key is the published demo one (so showing signatures reveals nothing)."""
    return any(b["private_key"] == brand.private_key for b in DEMO["fizzy"]["brands"])


class Fizzy(Dialect):
    name = "fizzy"
    ENDPOINTS = {
        "/wallet/balance": "balance",
        "/wallet/withdraw": "withdraw",
        "/wallet/deposit": "deposit",
        "/wallet/rollback": "rollback",
    }
    ERRORS = {
        e.InternalError: "ERROR_UNKNOWN_ERROR",
        e.BadRequest: "ERROR_BAD_REQUEST",
        e.UnknownPlayer: "ERROR_BAD_REQUEST",
        e.PlayerExists: "ERROR_BAD_REQUEST",
        e.PlayerBlocked: "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
        e.WalletLocked: "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
        e.AccountDisabled: "ERROR_BAD_REQUEST_PLAYER_BLOCKED",
        e.InvalidSession: "ERROR_INVALID_SESSION",
        e.SessionExpired: "ERROR_SESSION_EXPIRED",
        e.DuplicateTransaction: "ERROR_TRANSACTION_DUPLICATE",
        e.WithdrawNotFound: "ERROR_TRANSACTION_WITHDRAW_NOT_FOUND",
        e.InsufficientFunds: "ERROR_TRANSACTION_INSUFFICIENT_FUNDS",
        e.LimitExceeded: "ERROR_TRANSACTION_LIMIT_EXCEEDED",
        e.RealityCheck: "ERROR_TRANSACTION_REALITY_CHECK",
        e.TransactionNotFound: "ERROR_TRANSACTION_NOT_FOUND",
        e.RollbackTargetNotFound: "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND",
        e.GameNotActive: "ERROR_GAME_NOT_ACTIVE",
        e.InvalidGame: "ERROR_GAME_NOT_ACTIVE",
        e.AuthFailed: "ERROR_INVALID_SIGNATURE",
        e.TransactionPending: "ERROR_TIMEOUT",
        e.DuplicateRound: "ERROR_TRANSACTION_DUPLICATE",
        e.DecryptionFailed: "ERROR_BAD_REQUEST",
    }

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.settings = sim.settings.fizzy

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    def signed_url(self, request: web.Request) -> str:
        """The absolute URL the caller signed: ``public_url``, else the forwarded or the direct host."""
        if self.settings.public_url:
            return self.settings.public_url + request.raw_path
        scheme, host = origin(request, self.sim.settings.server.trusted_proxies)
        return f"{scheme}://{host}{request.raw_path}"

    def decode(self, request: web.Request, body: bytes, op: Operation) -> None:
        public_key = evidence.header(request, "Public-Key")
        brand = self.settings.brands.get(public_key)
        if brand is None:
            raise e.AuthFailed("missing or unknown Public-Key" if public_key else "missing Public-Key header")
        op.agent = public_key
        signature = evidence.header(request, "Signature")
        url = self.signed_url(request)
        if not evidence.is_text(url):
            raise e.AuthFailed("the Host header or the forwarded host is not UTF-8 text")
        expected = fizzy_signature(brand.private_key, request.method, url, body)
        if not signature or not same_hex(expected, signature):
            server = self.sim.settings.server
            raise evidence.signature_refused(
                f"Signature is not HMAC-SHA256(private key, METHOD\\nURL\\nMD5(body)) for URL {url}",
                fizzy_string_to_sign(request.method, url, body),
                body,
                expected,
                show=server.debug_signatures or is_demo(brand),
                cap=server.journal_body_bytes,
            )
        op.authenticated = True
        try:
            parsed = jsonio.loads(body)
        except jsonio.JSONError as exc:
            raise e.BadRequest(f"the body is not JSON: {exc}") from None
        op.request = parsed
        f = F.json_object(parsed)
        lenient = self.settings.conformance == "lenient"
        op.player = F.required_text(f, "playerId")
        op.params["session"] = F.required_text(f, "sessionId")
        kind = op.operation
        if kind == "rollback":
            op.transaction = F.required_text(f, "transactionId")
            op.params["withdraw_id"] = F.required_text(f, "withdrawTransactionId")
            op.game = F.required_text(f, "gameId")
            op.round = F.required_text(f, "gameRoundId")
            op.currency = F.text(f, "currency", required=False)
            F.text(f, "freeSpinsCampaignId", required=False)
        elif not F.tolerate(op, f, "currency", lenient):  # lenient: the player's currency
            op.currency = F.required_text(f, "currency")
        if kind in MONEY_ENDPOINTS:
            op.transaction = F.required_text(f, "transactionId")
            op.game = F.required_text(f, "gameId")
            op.round = F.required_text(f, "gameRoundId")
            op.amount = self._amounts(op, f, lenient)
            if not F.tolerate(op, f, "isGameRoundFinished", lenient):
                F.flag(f, "isGameRoundFinished")
            F.flag(f, "isFeatureBuy", required=False)
            F.text(f, "freeSpinsCampaignId", required=False)
            if kind == "deposit":
                op.params["withdraw_id"] = F.required_text(f, "withdrawTransactionId")
                F.flag(f, "isForceComplete", required=False)
                F.flag(f, "isFreeSpinsConsumed", required=False)
        op.mutating = op.transaction is not None
        op.params["fingerprint"] = F.fingerprint(f)

    def _amounts(self, op: Operation, f: dict[str, Any], lenient: bool) -> Decimal:
        """``amount`` checked against ``cashAmount + (jackpotAmount or 0)``; lenient mode reads a missing
        ``cashAmount`` as ``amount - jackpotAmount`` and numeric strings as numbers."""
        places = self.settings.max_decimals
        if lenient:
            f = F.numeric_strings(op, f, ("amount", "cashAmount", "jackpotAmount"))
        amount = F.required_amount(f, "amount", places)
        jackpot = F.amount(f, "jackpotAmount", places, required=False) or Decimal(0)
        if "jackpotAmount" not in f:
            F.note(op, "jackpotAmount", "missing (read as null in both modes)")
        if F.tolerate(op, f, "cashAmount", lenient):
            if jackpot > amount:
                raise e.BadRequest(f"jackpotAmount {jackpot} is larger than amount {amount}")
            return amount
        cash = F.required_amount(f, "cashAmount", places)
        if amount != cash + jackpot:
            raise e.BadRequest(f"amount {amount} is not cashAmount + jackpotAmount ({cash + jackpot})")
        return amount

    # business

    def _player(self, op: Operation, *, create: bool) -> Player:
        assert op.agent is not None and op.player is not None
        ledger = self.sim.ledger
        player = ledger.player(self.name, op.agent, op.player)
        if player is None:
            if self.settings.players == "strict":
                raise e.UnknownPlayer(f"no player {op.player!r}")
            if not create:  # a deposit or rollback for a player never seen: its withdraw cannot exist
                self._no_withdraw(op, op.player, f"no player {op.player!r}, so no withdraw")
            _, brand_currency, balance = self.sim.settings.new_player(self.name, op.agent)
            player = ledger.open(self.name, op.agent, op.player, op.currency or brand_currency, balance)
        if op.currency is not None and op.currency != player.currency:
            raise e.CurrencyMismatch(f"currency {op.currency} differs from the player's {player.currency}")
        if player.disabled:
            raise e.AccountDisabled(f"player {op.player!r} is disabled")
        return player

    def _session(self, op: Operation, player: Player) -> None:
        session = op.params["session"]
        owner = self.sim.ledger.bind_session(player, session, create=self.settings.sessions == "auto")
        if owner is None:
            raise e.InvalidSession(f"unknown session {session!r}")
        if owner != player.id:
            raise e.InvalidSession(f"session {session!r} belongs to another player")
        ttl = self.settings.session_ttl
        expired = player.session_expired or (ttl is not None and player.sessions[session] + ttl < self.sim.clock())
        if expired and op.operation in ("balance", "withdraw"):
            raise e.SessionExpired(f"session {session!r} has expired")

    def _replay(self, op: Operation) -> dict[str, Any] | None:
        """A repeat is a replay only on the same endpoint with the same payload (PROTOCOLS 2.4)."""
        assert op.agent is not None and op.transaction is not None
        existing = self.sim.ledger.find(self.name, op.agent, op.transaction)
        if existing is None:
            return None
        if existing.kind != op.operation:
            raise e.DuplicateTransaction(f"transactionId {op.transaction!r} was used by a {existing.kind}")
        if existing.fingerprint != op.params["fingerprint"]:
            raise e.DuplicateTransaction(f"transactionId {op.transaction!r} was used for another request")
        player = self.sim.ledger.player(self.name, op.agent, existing.player)
        assert player is not None
        return self._result(existing.balance_after, player.currency, existing.time)

    def _withdraw(self, op: Operation, player: Player) -> Transaction:
        """The withdraw a deposit or rollback names (``withdrawTransactionId``), of the same player."""
        assert op.agent is not None
        ref = op.params["withdraw_id"]
        txn = self.sim.ledger.find(self.name, op.agent, ref)
        if txn is None or txn.kind != "withdraw" or txn.player != player.id:
            self._no_withdraw(op, player.id, f"no withdraw {ref!r} for player {player.id!r}")
        return txn

    def _no_withdraw(self, op: Operation, player_id: str, detail: str) -> NoReturn:
        """Refuse a deposit or rollback whose withdraw is not there. A rollback whose withdraw id is not
        used at all leaves a tombstone: that withdraw may still be on its way (late arrival)."""
        assert op.agent is not None and op.transaction is not None
        ref = op.params["withdraw_id"]
        if op.operation == "deposit":
            raise e.WithdrawNotFound(detail)
        ledger = self.sim.ledger
        if ledger.find(self.name, op.agent, ref) is None and not ledger.forgotten_id(self.name, op.agent, ref):
            self.sim.ledger.bury_transaction(self.name, op.agent, player_id, ref, by=op.transaction)
            detail += "; tombstone left, so the withdraw is refused if it arrives later"
        raise e.RollbackTargetNotFound(detail)

    def _late(self, op: Operation) -> None:
        """Refuse a withdraw whose rollback came first (a tombstone names its id)."""
        assert op.agent is not None and op.transaction is not None
        stone = self.sim.ledger.transaction_tombstone(self.name, op.agent, op.transaction)
        if stone is not None:
            stone.refused += 1
            raise e.InvalidState(
                f"withdraw {op.transaction!r} was rolled back before it arrived (rollback {stone.by!r}); "
                "it changes nothing"
            )

    def perform(self, op: Operation) -> dict[str, Any]:
        ledger = self.sim.ledger
        kind = op.operation
        with ledger.atomic():
            if kind != "balance":
                replayed = self._replay(op)
                if replayed is not None:
                    return replayed
            player = self._player(op, create=kind in ("balance", "withdraw"))
            self._session(op, player)
            if kind == "balance":
                return self._result(player.balance, player.currency, self.sim.clock())
            fp = op.params["fingerprint"]
            if kind == "withdraw":
                assert op.amount is not None and op.transaction is not None
                self._late(op)
                if player.blocked or player.locked:
                    raise e.PlayerBlocked(f"player {player.id!r} is blocked")
                if op.game in self.settings.inactive_games:
                    raise e.GameNotActive(f"game {op.game!r} is not active")
                if player.bet_limit is not None and op.amount > player.bet_limit:
                    raise e.LimitExceeded(f"bet {op.amount} exceeds the limit {player.bet_limit}")
                if player.reality_check:
                    raise e.RealityCheck("the player has a pending reality check")
                txn = ledger.post(
                    player, op.transaction, "withdraw", debit=op.amount, round_id=op.round, game=op.game, fingerprint=fp
                )
            elif kind == "deposit":
                assert op.amount is not None and op.transaction is not None
                withdraw = self._withdraw(op, player)
                if withdraw.status == ROLLED_BACK:
                    raise e.InvalidState(f"withdraw {withdraw.id!r} was rolled back")
                txn = ledger.post(
                    player,
                    op.transaction,
                    "deposit",
                    credit=op.amount,
                    round_id=op.round,
                    game=op.game,
                    ref=withdraw.id,
                    fingerprint=fp,
                )
            else:
                assert op.transaction is not None
                withdraw = self._withdraw(op, player)
                if any(t.kind == "deposit" for t in ledger.referring(withdraw)):
                    raise e.InvalidState(f"withdraw {withdraw.id!r} already has a deposit")
                # a second rollback of the same withdraw refunds nothing (reverse() skips reversed targets)
                txn = ledger.reverse(
                    player,
                    op.transaction,
                    "rollback",
                    [withdraw],
                    status=ROLLED_BACK,
                    round_id=op.round,
                    game=op.game,
                    ref=withdraw.id,
                    fingerprint=fp,
                )
            return self._result(txn.balance_after, player.currency, txn.time)

    def _result(self, balance: Decimal, currency: str, when: float) -> dict[str, Any]:
        """A 200 body; for a transaction it is built from its record, so a replay answers the same."""
        result: dict[str, Any] = {"balance": out(balance), "currency": currency}
        if self.settings.resolve_timestamp:
            result["resolveTimestamp"] = int(when * 1000)
        return result

    # rendering

    def render_success(self, op: Operation, data: dict[str, Any]) -> Rendered:
        return 200, data, None

    def render_error(self, op: Operation, code: Any, message: str, status: int) -> Rendered:
        return status, {"code": code, "description": message, "traceId": log_id().replace("-", "")}, code
