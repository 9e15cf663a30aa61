"""AMBSlot seamless wallet (PROTOCOLS.md section 3): the simulator plays the operator's wallet.

Always HTTP 200 with ``{"status": {"code", "message"}, "data": {...}}``; ``data`` only on success.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from typing import Any

from aiohttp import web

from simulator import errors as e
from simulator import jsonio
from simulator.dialects import fields as F
from simulator.dialects.base import Dialect, Rendered
from simulator.dialects.xpro import iso_ms
from simulator.ledger import Player, Transaction
from simulator.ledger.core import CANCELLED
from simulator.money import out
from simulator.operations import Operation
from simulator.server.forwarded import client_address
from simulator.service import Simulator

DEBITS = ("bet", "settle")
CREDITS = ("payout", "settle")


class Ambslot(Dialect):
    name = "ambslot"
    ENDPOINTS = {
        "/balance": "balance",
        "/bet": "bet",
        "/payout": "payout",
        "/settle": "settle",
        "/cancel": "cancel",
    }
    ERRORS = {
        e.LimitExceeded: 607,
        e.InsufficientFunds: 800,
        e.DuplicateTransaction: 900,
        e.DuplicateRound: 900,
        e.UnknownPlayer: 908,
        e.AccountDisabled: 908,
        e.InvalidGame: 995,
        e.GameNotActive: 995,
        e.BadRequest: 997,
        e.DecryptionFailed: 997,
        e.PlayerExists: 997,
        e.AuthFailed: 998,
        e.WalletLocked: 999,
        e.PlayerBlocked: 999,
        e.InternalError: 999,
        e.TransactionPending: 1601,
        e.InvalidSession: 908,
        e.SessionExpired: 908,
        e.RealityCheck: 999,
        e.TransactionNotFound: 997,
        e.WithdrawNotFound: 997,
        e.RollbackTargetNotFound: 997,
    }

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.settings = sim.settings.ambslot

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    def source_allowed(self, request: web.Request) -> bool:
        allowed = self.settings.allowed_sources
        if allowed is None:
            return True
        source = client_address(request, self.sim.settings.server.trusted_proxies)
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(address in network for network in allowed)

    def decode(self, request: web.Request, body: bytes, op: Operation) -> None:
        if not self.source_allowed(request):
            source = client_address(request, self.sim.settings.server.trusted_proxies)
            raise e.AuthFailed(f"source address {source!r} is not in allowed_sources")
        try:
            parsed = jsonio.loads(body)
        except jsonio.JSONError as exc:
            raise e.BadRequest(f"the body is not JSON: {exc}") from None
        op.request = parsed
        f = F.json_object(parsed)
        op.player = F.required_text(f, "username")
        if op.operation == "balance":
            op.agent = F.required_text(f, "agentId")
        else:
            self._money_fields(op, f)
            op.params["fingerprint"] = F.fingerprint(f)
        if op.agent not in self.settings.agents:
            raise e.AuthFailed(f"agent {op.agent!r} is not configured")
        op.authenticated = True

    def _money_fields(self, op: Operation, f: dict[str, Any]) -> None:
        """The common fields of bet/payout/settle/cancel. Lenient mode lets through, when missing, the fields
        that move no money (``game``, ``timestamp``, ``isEndRound``, ``featureBuy``, ``turnover``, ``winlose``),
        ``currency`` (the player's) and a cancel's ``amount`` (a cancel refunds the stored bet)."""
        places = self.settings.max_decimals
        lenient = self.settings.conformance == "lenient"

        def absent(key: str) -> bool:
            return F.tolerate(op, f, key, lenient)

        if lenient:
            f = F.numeric_strings(op, f, ("amount", "turnover", "bet", "winlose"))
        op.agent = F.required_text(f, "agent")
        if not absent("game"):
            F.required_text(f, "game")
        op.game = F.required_text(f, "gameId")
        op.round = F.required_text(f, "roundId")
        cancel_without_amount = op.operation == "cancel" and absent("amount")
        op.amount = Decimal(0) if cancel_without_amount else F.required_amount(f, "amount", places)
        op.currency = None if absent("currency") else F.required_text(f, "currency")
        op.transaction = F.required_text(f, "transactionId")
        if not absent("timestamp"):
            F.required_text(f, "timestamp")
        for flag in ("isEndRound", "featureBuy"):
            if not absent(flag):
                F.flag(f, flag)
        if op.operation in ("payout", "settle") and not absent("turnover"):
            F.required_amount(f, "turnover", places)
        if op.operation == "settle":
            op.params["bet"] = F.required_amount(f, "bet", places)
            if not absent("winlose"):
                F.required_amount(f, "winlose", places, negative=True)
        op.mutating = True
        op.scope = op.operation  # ids are per operation: a cancel may carry its bet's transactionId

    # business

    def _player(self, op: Operation) -> Player:
        assert op.agent is not None and op.player is not None
        ledger = self.sim.ledger
        player = ledger.player(self.name, op.agent, op.player)
        if player is None:
            if self.settings.players == "strict":
                raise e.UnknownPlayer(f"no player {op.player!r}")
            _, currency, balance = self.sim.settings.new_player(self.name, op.agent)
            player = ledger.open(self.name, op.agent, op.player, currency, balance)
        if player.disabled:
            raise e.AccountDisabled(f"player {op.player!r} is disabled")
        return player

    def perform(self, op: Operation) -> dict[str, Any]:
        ledger = self.sim.ledger
        with ledger.atomic():
            player = self._player(op)
            if op.operation == "balance":
                return {"username": player.id, "wallet": self._wallet(player)}
            assert op.transaction is not None and op.amount is not None and op.round is not None
            games = self.settings.games
            if games is not None and op.game not in games:
                raise e.InvalidGame(f"game {op.game!r} is not in the configured game list")
            if op.currency is not None and op.currency != player.currency:  # None: lenient, the player's
                raise e.CurrencyMismatch(f"currency {op.currency} differs from the player's {player.currency}")
            existing = ledger.find(self.name, player.tenant, op.transaction, op.scope)
            if existing is not None:
                if existing.fingerprint != op.params["fingerprint"]:
                    raise e.DuplicateTransaction(f"transactionId {op.transaction!r} was used for another request")
                return self._answer(existing)
            round_txns = ledger.round(player, op.round)
            fp = op.params["fingerprint"]
            common: dict[str, Any] = {
                "scope": op.scope,
                "round_id": op.round,
                "game": op.game,
                "fingerprint": fp,
                "track_round": True,
            }
            if op.operation != "cancel":
                self._late(op, player)
            if op.operation in DEBITS:
                stake = op.params["bet"] if op.operation == "settle" else op.amount
                if player.locked or player.blocked:
                    raise e.WalletLocked(f"player {player.id!r} is locked")
                if any(t.kind in DEBITS for t in round_txns):
                    raise e.DuplicateRound(f"round {op.round!r} already has a bet")
                if player.bet_limit is not None and stake > player.bet_limit:
                    raise e.LimitExceeded(f"bet {stake} exceeds the limit {player.bet_limit}")
                credit = op.amount if op.operation == "settle" else Decimal(0)
                txn = ledger.post(player, op.transaction, op.operation, debit=stake, credit=credit, **common)
            elif op.operation == "payout":
                if any(t.status == CANCELLED for t in round_txns):
                    raise e.InvalidState(f"round {op.round!r} was cancelled")
                txn = ledger.post(player, op.transaction, "payout", credit=op.amount, **common)
            else:
                if any(t.kind in CREDITS for t in round_txns):
                    raise e.InvalidState(f"round {op.round!r} was already paid out")
                bets = [t for t in round_txns if t.kind == "bet"]
                # unknown round or second cancel: recorded, refunds nothing (reverse() skips reversed bets)
                txn = ledger.reverse(player, op.transaction, "cancel", bets, status=CANCELLED, **common)
                if not bets:  # the bet may still be on its way: refuse it when it comes
                    ledger.bury_round(player, op.round, by=op.transaction)
            return self._answer(txn)

    def _late(self, op: Operation, player: Player) -> None:
        """Refuse a bet, settle or payout on a round that was cancelled before its bet arrived."""
        assert op.round is not None
        stone = self.sim.ledger.round_tombstone(player, op.round)
        if stone is not None:
            stone.refused += 1
            raise e.InvalidState(
                f"round {op.round!r} cancelled before the bet arrived (cancel {stone.by!r}); "
                f"the {op.operation} changes nothing"
            )

    @staticmethod
    def _answer(txn: Transaction) -> dict[str, Any]:
        """``data`` of a money call, built from its record (so a replay answers exactly the same)."""
        after = out(txn.balance_after)
        return {
            "username": txn.player,
            "wallet": {"balance": after, "lastUpdate": iso_ms(txn.time)},
            "balance": {"before": out(txn.balance_before), "after": after},
            "refId": txn.id,
        }

    @staticmethod
    def _wallet(player: Player) -> dict[str, Any]:
        return {"balance": out(player.balance), "lastUpdate": iso_ms(player.updated)}

    # rendering

    def render_success(self, op: Operation, data: dict[str, Any]) -> Rendered:
        return 200, {"status": {"code": 0, "message": self.codes[0][1]}, "data": data}, 0

    def render_error(self, op: Operation, code: Any, message: str, status: int) -> Rendered:
        return status, {"status": {"code": code, "message": message}}, code
