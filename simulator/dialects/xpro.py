"""XPro transfer wallet (PROTOCOLS.md section 1): the simulator plays the provider, the operator calls us.

Checks run in the documented order: headers and signature (83) -> agent (10) -> replayed nonce (83) -> token
(83) -> decrypt (84) -> parameters (11, and for /v2/auth the secret, 10) -> player (8, 19, 20) -> business
rules (2, 3, 35). The nonce is recorded once the token (or the secret) proved who is calling.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Literal, TypeVar

from aiohttp import web

from simulator import errors as e
from simulator import jsonio
from simulator.config import XproAgent
from simulator.dialects import evidence
from simulator.dialects import fields as F
from simulator.dialects.base import Dialect, Rendered, log_id
from simulator.dialects.crypto import same_hex, xpro_decrypt, xpro_signature, xpro_string_to_sign
from simulator.ledger import Player, Transaction
from simulator.money import decimals, is_amount, out
from simulator.operations import Operation
from simulator.service import Simulator

USERNAME = re.compile(r"[A-Za-z0-9]{1,25}")
NONCE = re.compile(r"[0-9a-f]{32}")
TIMESTAMP = re.compile(r"[0-9]{1,16}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
BALANCE_PLACES = 6
TOKEN_CACHE = 10_000
#: the plaintext fields each operation reads: a missing one next to an unknown near miss is named as a typo
FIELDS: dict[str, tuple[str, ...]] = {
    "auth": ("agentId", "secret"),
    "create": ("username", "siteId", "Site ID"),
    "balance": ("username",),
    "transaction": ("username", "transId", "amount"),
    "cashout": ("username", "transId"),
    "check": ("username", "transId"),
}
T = TypeVar("T")
SIGNED_HEADERS = ("x-agentid", "x-timestamp", "x-nonce", "x-signature")


_SECOND: list[Any] = [None, ""]  # the last whole second formatted (every response formats a time)


def iso_ms(epoch: float) -> str:
    """``2026-02-02T10:30:00.000Z`` (UTC, milliseconds)."""
    millis = int(epoch * 1000)
    second, ms = divmod(millis, 1000)
    if _SECOND[0] != second:
        _SECOND[0], _SECOND[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_SECOND[1]}.{ms:03d}Z"


def token_fingerprint(header: str | None) -> str | None:
    """A short SHA-256 prefix of the bearer token: tells tokens apart in the scorecard, never reveals one."""
    if not header:
        return None
    return hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:12]


class NonceCache:
    """Nonces seen, per agent, in arrival order. A nonce is only dangerous while its timestamp is inside the
    window, so it is forgotten twice the skew after it arrived (by then its timestamp is refused anyway).

    Each agent's bucket holds at most ``cap`` nonces. A full bucket whose nonces are all still inside the
    window refuses new requests (``"full"``) rather than forget one, which would let its replay in. Expiry
    pops from the left of an insertion-ordered dict: O(1) per nonce, however many came before.

    The rule every store follows: any request may be *checked* against the bucket (:meth:`seen`), but only a
    request that proved it is the agent (a valid bearer token, or for ``/v2/auth`` the agent's secret) is
    *recorded* (:meth:`add`). Anyone can compute an XPro signature, so recording token-less requests would
    let a stranger who knows the agent id fill the bucket and lock the agent out. A replay of a recorded
    request is still refused; a replay of an unproven one is refused anyway, for its missing credentials.
    A shared store records in ``Simulator.run``, which only decoded (so proven) requests reach."""

    def __init__(self, window: float, cap: int) -> None:
        self.window = window * 2
        self.cap = cap
        self._buckets: dict[str, OrderedDict[str, float]] = {}

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def seen(self, agent: str, nonce: str, now: float) -> bool:
        """Whether ``nonce`` was recorded for ``agent`` inside the window (records nothing)."""
        bucket = self._buckets.get(agent)
        if bucket is None:
            return False
        self._expire(bucket, now)
        return nonce in bucket

    def add(self, agent: str, nonce: str, now: float) -> Literal["ok", "replay", "full"]:
        """Remember a nonce of a request that proved it is ``agent``: ``ok``, or ``replay`` (seen inside the
        window), or ``full``."""
        bucket = self._buckets.get(agent)
        if bucket is None:
            bucket = self._buckets[agent] = OrderedDict()
        self._expire(bucket, now)
        if nonce in bucket:
            return "replay"
        if len(bucket) >= self.cap:
            return "full"
        bucket[nonce] = now
        return "ok"

    def _expire(self, bucket: OrderedDict[str, float], now: float) -> None:
        horizon = now - self.window
        while bucket:
            first = next(iter(bucket.values()))
            if first >= horizon:
                break
            bucket.popitem(last=False)


class Xpro(Dialect):
    name = "xpro"
    ENDPOINTS = {
        "/v2/auth": "auth",
        "/v2/members": "create",
        "/v2/members/balance": "balance",
        "/v2/members/transaction": "transaction",  # deposit or withdraw, by the sign of amount
        "/v2/members/cashout": "cashout",
        "/v2/members/check/transactions": "check",
    }
    ERRORS = {
        e.InsufficientFunds: 2,
        e.DuplicateTransaction: 3,
        e.TransactionNotFound: 4,
        e.PlayerExists: 6,
        e.InternalError: 7,
        e.UnknownPlayer: 8,
        e.UnknownAgent: 10,
        e.BadRequest: 11,
        e.AccountDisabled: 19,
        e.WalletLocked: 20,
        e.PlayerBlocked: 20,
        e.TransactionPending: 35,
        e.AuthFailed: 83,
        e.DecryptionFailed: 84,
    }

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.settings = sim.settings.xpro
        self.nonces = NonceCache(self.settings.timestamp_skew, self.settings.max_nonces)
        self._tokens: dict[str, dict[str, Any]] = {}  # verified tokens -> claims (expiry still checked)

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    # tokens

    def issue_token(self, agent_id: str) -> tuple[str, int]:
        import jwt  # here, not at the top: PyJWT loads cryptography's X.509 layer, a fifth of start-up

        now = int(self.sim.clock())
        ttl = self.settings.token_ttl
        token = jwt.encode({"agentId": agent_id, "iat": now, "exp": now + ttl}, self.settings.token_secret, "HS256")
        return token, ttl

    def check_token(self, header: str, agent_id: str) -> None:
        token = evidence.bearer(header)
        if not token:
            raise e.AuthFailed("missing Authorization: Bearer <accessToken>")
        claims = self._tokens.get(token)
        if claims is None:  # verify a token's signature once; its claims cannot change
            import jwt  # see issue_token

            try:
                claims = jwt.decode(
                    token,
                    self.settings.token_secret,
                    algorithms=["HS256"],
                    options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat"]},
                )
            except jwt.PyJWTError as exc:
                raise e.AuthFailed(f"invalid token: {exc}") from None
            if len(self._tokens) >= TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[token] = claims
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self.sim.clock():
            raise e.AuthFailed("token expired")
        if claims.get("agentId") != agent_id:
            raise e.AuthFailed("token was issued to another agent")

    # decoding

    def decode(self, request: web.Request, body: bytes, op: Operation) -> None:
        agent_id, timestamp, nonce, signature = (evidence.header(request, n) for n in SIGNED_HEADERS)
        op.agent = agent_id or None
        missing = [n for n, v in zip(SIGNED_HEADERS, (agent_id, timestamp, nonce, signature), strict=True) if not v]
        if missing:
            raise e.AuthFailed(f"missing header(s): {', '.join(missing)}")
        try:
            envelope = jsonio.loads(body)
        except jsonio.JSONError:
            envelope = None
        cipher = envelope.get("cipherText") if isinstance(envelope, dict) else None
        self._signature(agent_id, timestamp, nonce, signature, cipher if isinstance(cipher, str) else "", body)
        if not TIMESTAMP.fullmatch(timestamp):
            raise e.AuthFailed("x-timestamp is not unix time in milliseconds")
        now = self.sim.clock()
        op.params["clock_skew"] = int(timestamp) / 1000 - now  # for the scorecard (timestamps near the limit)
        skew = abs(op.params["clock_skew"])
        if skew > self.settings.timestamp_skew:
            raise e.AuthFailed(
                f"x-timestamp is {skew:.0f}s from the simulator's clock (allowed {self.settings.timestamp_skew}s)"
            )
        if not NONCE.fullmatch(nonce):
            raise e.AuthFailed("x-nonce is not 32 lowercase hex characters")
        op.params["nonce"] = nonce  # for the scorecard's hygiene findings (reused nonces)

        agent = self.settings.agents.get(agent_id)
        if agent is None:
            raise e.UnknownAgent(f"agent {agent_id[:64]!r} is not configured")
        if agent.blocked:
            raise e.UnknownAgent(f"agent {agent_id!r} is blocked")
        if self.nonces.seen(agent_id, nonce, now):
            raise e.AuthFailed("x-nonce was already used (replay)")
        if op.operation != "auth":
            authorization = evidence.header(request, "Authorization")
            op.params["token_fingerprint"] = token_fingerprint(authorization)
            self.check_token(authorization, agent_id)
            self._record_nonce(agent_id, nonce, now)  # the token proved the caller: only now a slot
        op.authenticated = True

        if not isinstance(cipher, str):
            raise e.DecryptionFailed('the body is not {"cipherText": "..."}')
        plaintext = xpro_decrypt(agent.key, cipher)
        try:
            fields = jsonio.loads(plaintext)
        except jsonio.JSONError as exc:
            raise e.BadRequest(f"the decrypted plaintext is not JSON: {exc}") from None
        op.request = fields
        if not isinstance(fields, dict):
            raise e.BadRequest("the decrypted plaintext is not a JSON object")
        self._parameters(op, fields, agent)
        if op.operation == "auth":
            if not hmac.compare_digest(agent.secret.encode(), op.params["secret"].encode()):
                raise e.UnknownAgent("wrong secret")
            self._record_nonce(agent_id, nonce, now)  # the secret proved the caller

    def _record_nonce(self, agent_id: str, nonce: str, now: float) -> None:
        """Take a slot in the agent's nonce bucket: only for a request that proved it is the agent."""
        taken = self.nonces.add(agent_id, nonce, now)
        if taken == "replay":  # seen() was asked just before, with no await between: cannot happen
            raise e.AuthFailed("x-nonce was already used (replay)")
        if taken == "full":
            raise e.AuthFailed(
                f"too many requests inside the replay window: agent {agent_id!r} already has {self.nonces.cap} "
                f"nonces younger than {self.nonces.window:.0f}s (xpro.max_nonces); retry later"
            )

    def decoded_text(self, op: Operation, body: bytes) -> bytes:
        try:
            return jsonio.dumpb(op.request)  # the plaintext, again (the body is its ciphertext)
        except (TypeError, ValueError):  # cannot happen for what jsonio decoded; the body is a fair stand-in
            return body

    def _signature(self, agent_id: str, timestamp: str, nonce: str, given: str, cipher: str, body: bytes) -> None:
        """The unkeyed SHA-256 signature; a refusal shows what was computed (nothing in it is secret)."""
        expected = xpro_signature(agent_id, timestamp, nonce, cipher)
        if not SIGNATURE.fullmatch(given) or not same_hex(expected, given):
            raise evidence.signature_refused(
                "x-signature is not SHA256(agentId|timestamp|nonce|cipherText)",
                xpro_string_to_sign(agent_id, timestamp, nonce, cipher),
                body,
                expected,
                show=True,
                cap=self.sim.settings.server.journal_body_bytes,
            )

    def _parameters(self, op: Operation, f: dict[str, Any], agent: XproAgent) -> None:
        """Every refusal names its field: ``amount is required``, ``amount must be a number, got a string``,
        ``unknown field 'transid' (did you mean 'transId'?)`` (then the scorecard counts it like Fizzy's)."""
        op.currency = agent.currency
        known = FIELDS[op.operation]
        if op.operation == "auth":
            for key in ("agentId", "secret"):
                self._field(f, key, str, known)
            op.params["secret"] = f["secret"]
            if f["agentId"] != agent.id:
                raise e.UnknownAgent("agentId in the body differs from x-agentid")
            return
        username = self._field(f, "username", str, known)
        if not USERNAME.fullmatch(username):
            raise e.BadRequest("username must be 1-25 ASCII letters or digits")
        op.player = username
        if op.operation == "create":
            site = f.get("siteId", f.get("Site ID"))
            if site is not None and not isinstance(site, (str, Decimal)):
                raise e.BadRequest(f"siteId must be a string or a number, got {F.kind(site)}")
            op.params["site_id"] = None if site is None else str(site)
            return
        if op.operation in ("transaction", "cashout", "check"):
            trans_id = self._field(f, "transId", str, known)
            if not 1 <= len(trans_id) <= 64:
                raise e.BadRequest("transId must be a string of 1-64 characters")
            op.transaction = trans_id
            op.mutating = op.operation != "check"
        if op.operation == "transaction":
            if self.settings.conformance == "lenient":
                f = F.numeric_strings(op, f, ("amount",))
            amount = self._field(f, "amount", Decimal, known)
            if not is_amount(amount):
                raise e.BadRequest("amount must be a finite number within 1e15")
            if amount == 0:
                raise e.BadRequest("amount must not be zero")
            if decimals(amount) > 2:
                raise e.BadRequest("amount has more than 2 decimal places")
            op.params["amount"] = amount
            op.operation = "deposit" if amount > 0 else "withdraw"
            op.amount = abs(amount)

    @staticmethod
    def _field(f: dict[str, Any], key: str, expected: type[T], known: tuple[str, ...]) -> T:
        """``f[key]`` of the ``expected`` JSON type, or a refusal naming the field (and a near-miss typo)."""
        value = f.get(key)
        if value is None:
            raise F.absent(f, key, known)
        if not isinstance(value, expected) or isinstance(value, bool):
            wanted = "a number" if expected is Decimal else "a string"
            raise e.BadRequest(f"{key} must be {wanted}, got {F.kind(value)}")
        return value

    # business

    def _player(self, op: Operation, *, moves_money: bool = False) -> Player:
        assert op.agent is not None and op.player is not None
        player = self.sim.ledger.player(self.name, op.agent, op.player)
        if player is None:
            raise e.UnknownPlayer(f"no player {op.player!r} under agent {op.agent!r}")
        if player.disabled:
            raise e.AccountDisabled(f"player {op.player!r} is disabled")
        if moves_money and (player.locked or player.blocked):
            raise e.WalletLocked(f"player {op.player!r} is locked")
        return player

    def _repeat(self, op: Operation, fingerprint: int) -> dict[str, Any]:
        """A used transId: replay the original answer or refuse with 3, as ``duplicate_transid`` says."""
        assert op.agent is not None and op.transaction is not None
        existing = self.sim.ledger.find(self.name, op.agent, op.transaction)
        assert existing is not None
        policy = self.settings.duplicate_transid
        same = existing.fingerprint == fingerprint
        if same and (policy == "replay" or (policy == "per_endpoint" and op.operation == "cashout")):
            return self._answer(existing)
        raise e.DuplicateTransaction(f"transId {op.transaction!r} was already used")

    def perform(self, op: Operation) -> dict[str, Any]:
        ledger = self.sim.ledger
        assert op.agent is not None
        agent = self.settings.agents[op.agent]
        if op.operation == "auth":  # decode checked the secret
            token, ttl = self.issue_token(agent.id)
            return {"accessToken": token, "expiresIn": ttl, "tokenType": "Bearer"}
        assert op.player is not None
        with ledger.atomic():
            if op.operation == "create":
                player = ledger.open(self.name, agent.id, op.player, agent.currency, Decimal(0))
                player.site_id = op.params["site_id"]
                return {}
            if op.operation == "balance":
                player = self._player(op)
                return {
                    "agentId": agent.id,
                    "username": player.id,
                    "currency": player.currency,
                    "balance": out(player.balance, BALANCE_PLACES),
                }
            if op.operation == "check":
                self._player(op)
                assert op.transaction is not None
                txn = ledger.find(self.name, agent.id, op.transaction)
                if txn is None and (
                    op.params.get("in_flight") or ledger.in_flight(self.name, agent.id, op.transaction)
                ):
                    # never 4 ("doesn't exist") for a transfer still being processed: 4 invites a resend
                    raise e.TransactionPending(f"transaction {op.transaction!r} is still being processed")
                if txn is None or txn.player != op.player:
                    raise e.TransactionNotFound(f"no transaction {op.transaction!r} for {op.player!r}")
                return {
                    "agentId": agent.id,
                    "transId": txn.id,
                    "transactionTime": iso_ms(txn.time),
                    "amount": out(txn.amount),
                    "username": txn.player,
                }
            player = self._player(op, moves_money=True)
            assert op.transaction is not None
            if op.operation == "cashout":
                fingerprint = hash(("cashout", op.player))
                if ledger.find(self.name, agent.id, op.transaction):
                    return self._repeat(op, fingerprint)
                if player.balance <= 0:
                    raise e.InsufficientFunds("cashout of a zero balance")
                debit, credit = player.balance, Decimal(0)
            else:
                amount: Decimal = op.params["amount"]
                fingerprint = hash(("transaction", op.player, amount))
                if ledger.find(self.name, agent.id, op.transaction):
                    return self._repeat(op, fingerprint)
                debit, credit = (-amount, Decimal(0)) if amount < 0 else (Decimal(0), amount)
            txn = ledger.post(player, op.transaction, op.operation, debit=debit, credit=credit, fingerprint=fingerprint)
            return self._answer(txn)

    @staticmethod
    def _answer(txn: Transaction) -> dict[str, Any]:
        """``data`` of a transfer or cashout, built from its record (so a replay answers the same)."""
        amount = txn.debit if txn.kind == "cashout" else txn.amount
        return {"amount": out(amount), "balance": out(txn.balance_after, BALANCE_PLACES)}

    # rendering

    def render_success(self, op: Operation, data: dict[str, Any]) -> Rendered:
        body: dict[str, Any] = {"code": 0, "message": self.codes[0][1]}
        if data:
            body["data"] = data
        body["logUUID"] = log_id()
        return 200, body, 0

    def render_error(self, op: Operation, code: Any, message: str, status: int) -> Rendered:
        return status, {"code": code, "message": message, "logUUID": log_id()}, code
