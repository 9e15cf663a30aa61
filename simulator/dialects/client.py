"""Reference clients: how an integrator must encrypt, sign and call each dialect.

The tests use them for every protocol behaviour, the CLI wraps them, and users can read them as the
executable form of PROTOCOLS.md. Each ``prepare`` builds the exact bytes and headers without sending,
so a test (or a benchmark) can tamper with or replay a request.
"""

from __future__ import annotations

import secrets
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp

from simulator import jsonio
from simulator.config import DEMO, xpro_key
from simulator.dialects.crypto import (
    fizzy_signature,
    fizzy_string_to_sign,
    xpro_encrypt,
    xpro_signature,
    xpro_string_to_sign,
)

DEMO_XPRO = DEMO["xpro"]["agents"][0]
DEMO_FIZZY = DEMO["fizzy"]["brands"][0]
DEMO_AMBSLOT = DEMO["ambslot"]["agents"][0]


@dataclass
class Prepared:
    """One request, ready to send: URL, headers and the exact body bytes."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    notes: dict[str, str] = field(default_factory=dict)  # plaintext, canonical string, ...

    def curl(self) -> str:
        parts = ["curl", "-sS", "-X", self.method, self.url]
        for name, value in self.headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-binary", self.body.decode("utf-8", "replace")]
        return " ".join(shlex.quote(p) for p in parts)


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON (numbers as Decimal), or the raw text when it is not JSON
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), f"not a JSON object: {self.body!r}"
        return self.body


def encode(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return jsonio.dumps(payload).encode("utf-8")


class _Base:
    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.timeout = timeout

    async def __aenter__(self) -> _Base:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def send(self, prepared: Prepared) -> Reply:
        async with self.session().request(
            prepared.method, prepared.url, data=prepared.body, headers=prepared.headers
        ) as response:
            raw = await response.read()
            try:
                body: Any = jsonio.loads(raw)
            except jsonio.JSONError:
                body = raw.decode("utf-8", "replace")
            return Reply(response.status, body, dict(response.headers))


class XproClient(_Base):
    """The operator's side of XPro: AES-256-GCM bodies, SHA-256 signatures, a Bearer token."""

    def __init__(
        self,
        base_url: str,
        agent_id: str = DEMO_XPRO["id"],
        secret: str = DEMO_XPRO["secret"],
        api_key: str = DEMO_XPRO["api_key"],
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url, session)
        self.agent_id = agent_id
        self.secret = secret
        self.key = xpro_key(api_key)
        self.clock = clock
        self.token: str | None = None

    def prepare(
        self,
        path: str,
        payload: Any,
        *,
        token: str | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
        iv: bytes | None = None,
        key: bytes | None = None,
        agent_id: str | None = None,
    ) -> Prepared:
        plaintext = encode(payload)
        cipher_text = xpro_encrypt(key or self.key, plaintext, iv)
        agent = agent_id if agent_id is not None else self.agent_id
        ts = timestamp if timestamp is not None else str(int(self.clock() * 1000))
        nonce = nonce if nonce is not None else secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "x-agentid": agent,
            "x-timestamp": ts,
            "x-nonce": nonce,
            "x-signature": xpro_signature(agent, ts, nonce, cipher_text),
        }
        bearer = token if token is not None else self.token
        if bearer and path.rstrip("/") != "/v2/auth":
            headers["Authorization"] = f"Bearer {bearer}"
        body = jsonio.dumps({"cipherText": cipher_text}).encode("utf-8")
        notes = {
            "plaintext": plaintext.decode("utf-8", "replace"),
            "canonical": xpro_string_to_sign(agent, ts, nonce, cipher_text),
        }
        return Prepared("POST", self.base_url + path, headers, body, notes)

    async def call(self, path: str, payload: Any, **options: Any) -> Reply:
        return await self.send(self.prepare(path, payload, **options))

    async def authenticate(self) -> str:
        reply = await self.call("/v2/auth", {"agentId": self.agent_id, "secret": self.secret})
        if reply.json.get("code") != 0:
            raise RuntimeError(f"XPro auth failed: {reply.body}")
        self.token = str(reply.json["data"]["accessToken"])
        return self.token

    async def create_member(self, username: str, **extra: Any) -> Reply:
        return await self.call("/v2/members", {"username": username, **extra})

    async def balance(self, username: str) -> Reply:
        return await self.call("/v2/members/balance", {"username": username})

    async def transfer(self, username: str, amount: Decimal | int | str, trans_id: str | None = None) -> Reply:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        return await self.call(
            "/v2/members/transaction",
            {"username": username, "amount": value, "transId": trans_id or str(uuid.uuid4())},
        )

    async def cashout(self, username: str, trans_id: str | None = None) -> Reply:
        return await self.call("/v2/members/cashout", {"username": username, "transId": trans_id or str(uuid.uuid4())})

    async def check(self, username: str, trans_id: str) -> Reply:
        return await self.call("/v2/members/check/transactions", {"username": username, "transId": trans_id})


class FizzyClient(_Base):
    """The game provider's side of Fizzy Bubbly: HMAC-SHA256 over method, URL and the body's MD5."""

    def __init__(
        self,
        base_url: str,
        public_key: str = DEMO_FIZZY["public_key"],
        private_key: str = DEMO_FIZZY["private_key"],
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url, session)
        self.public_key = public_key
        self.private_key = private_key

    def prepare(self, path: str, payload: Any, *, private_key: str | None = None, url: str | None = None) -> Prepared:
        body = encode(payload)
        target = self.base_url + path
        signed_url = url or target
        signature = fizzy_signature(private_key or self.private_key, "POST", signed_url, body)
        headers = {"Content-Type": "application/json", "Public-Key": self.public_key, "Signature": signature}
        notes = {"string_to_sign": fizzy_string_to_sign("POST", signed_url, body)}
        return Prepared("POST", target, headers, body, notes)

    async def call(self, path: str, payload: Any, **options: Any) -> Reply:
        return await self.send(self.prepare(path, payload, **options))

    @staticmethod
    def money(
        player: str,
        amount: Decimal | str | int,
        *,
        txn: str | None = None,
        round_id: str = "round-1",
        currency: str = "EUR",
        session: str = "session-1",
        game: str = "game-1",
        **extra: Any,
    ) -> dict[str, Any]:
        value = Decimal(str(amount))
        return {
            "transactionId": txn or str(uuid.uuid4()),
            "playerId": player,
            "sessionId": session,
            "currency": currency,
            "gameId": game,
            "gameRoundId": round_id,
            "amount": value,
            "cashAmount": value,
            "jackpotAmount": None,
            "isGameRoundFinished": False,
            **extra,
        }

    async def balance(self, player: str, currency: str = "EUR", session: str = "session-1") -> Reply:
        return await self.call("/wallet/balance", {"playerId": player, "sessionId": session, "currency": currency})

    async def withdraw(self, player: str, amount: Decimal | str | int, **kw: Any) -> Reply:
        return await self.call("/wallet/withdraw", self.money(player, amount, **kw))

    @classmethod
    def deposit_fields(cls, player: str, amount: Decimal | str | int, withdraw_id: str, **kw: Any) -> dict[str, Any]:
        return {**cls.money(player, amount, isGameRoundFinished=True, **kw), "withdrawTransactionId": withdraw_id}

    async def deposit(self, player: str, amount: Decimal | str | int, withdraw_id: str, **kw: Any) -> Reply:
        return await self.call("/wallet/deposit", self.deposit_fields(player, amount, withdraw_id, **kw))

    @staticmethod
    def rollback_fields(
        player: str,
        withdraw_id: str,
        *,
        txn: str | None = None,
        round_id: str = "round-1",
        session: str = "session-1",
        game: str = "game-1",
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "transactionId": txn or str(uuid.uuid4()),
            "withdrawTransactionId": withdraw_id,
            "playerId": player,
            "sessionId": session,
            "gameId": game,
            "gameRoundId": round_id,
            **extra,
        }

    async def rollback(self, player: str, withdraw_id: str, **kw: Any) -> Reply:
        return await self.call("/wallet/rollback", self.rollback_fields(player, withdraw_id, **kw))


class AmbslotClient(_Base):
    """AMBSlot's side of its seamless wallet: plain JSON, the agent id in the body."""

    def __init__(
        self, base_url: str, agent: str = DEMO_AMBSLOT["id"], session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(base_url, session)
        self.agent = agent

    def prepare(self, path: str, payload: Any) -> Prepared:
        return Prepared("POST", self.base_url + path, {"Content-Type": "application/json"}, encode(payload))

    async def call(self, path: str, payload: Any) -> Reply:
        return await self.send(self.prepare(path, payload))

    def fields(
        self,
        username: str,
        round_id: str,
        amount: Decimal | str | int,
        *,
        txn: str | None = None,
        currency: str = "THB",
        game: str = "GH",
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "username": username,
            "agent": self.agent,
            "game": "Ghost House",
            "gameId": game,
            "roundId": round_id,
            "amount": Decimal(str(amount)),
            "currency": currency,
            "transactionId": txn or str(uuid.uuid4()),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime()),
            "isEndRound": False,
            "featureBuy": False,
            **extra,
        }

    async def balance(self, username: str) -> Reply:
        return await self.call("/balance", {"username": username, "agentId": self.agent})

    async def bet(self, username: str, round_id: str, amount: Decimal | str | int, **kw: Any) -> Reply:
        return await self.call("/bet", self.fields(username, round_id, amount, **kw))

    def payout_fields(
        self, username: str, round_id: str, amount: Decimal | str | int, turnover: Decimal | str | int = 0, **kw: Any
    ) -> dict[str, Any]:
        return self.fields(username, round_id, amount, turnover=Decimal(str(turnover)), isEndRound=True, **kw)

    async def payout(
        self, username: str, round_id: str, amount: Decimal | str | int, turnover: Decimal | str | int = 0, **kw: Any
    ) -> Reply:
        return await self.call("/payout", self.payout_fields(username, round_id, amount, turnover, **kw))

    def settle_fields(
        self, username: str, round_id: str, bet: Decimal | str | int, win: Decimal | str | int, **kw: Any
    ) -> dict[str, Any]:
        b, w = Decimal(str(bet)), Decimal(str(win))
        return self.fields(username, round_id, w, bet=b, winlose=w - b, turnover=b, isEndRound=True, **kw)

    async def settle(
        self, username: str, round_id: str, bet: Decimal | str | int, win: Decimal | str | int, **kw: Any
    ) -> Reply:
        return await self.call("/settle", self.settle_fields(username, round_id, bet, win, **kw))

    async def cancel(self, username: str, round_id: str, amount: Decimal | str | int = 0, **kw: Any) -> Reply:
        return await self.call("/cancel", self.fields(username, round_id, amount, **kw))
