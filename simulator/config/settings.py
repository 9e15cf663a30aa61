"""Every setting, declared once: key (section and field name), type (the annotation), default, bounds,
environment variable and one line of help.

The config file's JSON Schema, the defaults, the environment table of ``serve`` and its flags, and
``docs/configuration.md`` are all derived from these classes (:mod:`simulator.config.declare`).

**Adding a setting** is one entry: a field in its section, e.g. in :class:`ServerSettings`::

    max_widgets: int = setting(100, "widgets kept at most (oldest dropped)", minimum=1, maximum=10_000)

Give ``env="WALLET_SIM_MAX_WIDGETS", flag="--max-widgets"`` to make it a ``serve`` option with a variable;
``convert=`` when the file's value needs turning into the object's (a ``ValueError`` it raises is reported
with file, line and key); ``raw=`` when the default as a file writes it differs from the object's. Then
regenerate the docs table (a test checks it is current)::

    python -m simulator config-doc --output docs/configuration.md

A new section is a frozen dataclass of such fields plus a field of that type on :class:`Settings`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simulator.config.declare import Tenants, setting, tenants
from simulator.money import parse_amount

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: what the deprecated ``trust_forwarded: true`` stands for: a proxy on this host
LOOPBACK_PROXIES = ("127.0.0.0/8", "::1/128")

_CURRENCY = {"type": "string", "pattern": "^[A-Z0-9]{2,10}$"}
_POLICY = ["auto", "strict"]
_CONFORMANCE = ["strict", "lenient"]


def xpro_key(spec: str) -> bytes:
    """An XPro ``api_key`` as AES-256 key bytes: a 32-character string used as its UTF-8 bytes, or
    ``hex:<64 hex digits>``, or ``base64:<44 chars>``."""
    if spec.startswith("hex:"):
        try:
            key = bytes.fromhex(spec[4:])
        except ValueError:
            raise ValueError("hex: must be followed by 64 hex digits") from None
    elif spec.startswith("base64:"):
        try:
            key = base64.b64decode(spec[7:], validate=True)
        except binascii.Error:
            raise ValueError("base64: must be followed by 44 characters of standard base64") from None
    else:
        key = spec.encode("utf-8")
    if len(key) != 32:
        raise ValueError(
            f"an AES-256 key is 32 bytes, this one is {len(key)} "
            "(use a 32-character string, hex:<64 hex digits> or base64:<44 chars>)"
        )
    return key


def _balance(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount < 0:
        raise ValueError("a balance must not be negative")
    return amount


def _prefix(value: str) -> str:
    value = value.strip()
    if not value or value == "/":
        return ""
    return "/" + value.strip("/")


def _networks(values: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _proxies(server: Mapping[str, Any]) -> list[str]:
    """``trusted_proxies``, or the loopback ones the deprecated ``trust_forwarded: true`` stands for."""
    given: list[str] = server["trusted_proxies"]
    return given or (list(LOOPBACK_PROXIES) if server["trust_forwarded"] else [])


def _optional(convert: Any) -> Any:
    return lambda value: None if value is None else convert(value)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting(
        "127.0.0.1",
        "address to bind; 0.0.0.0 in the container image",
        env="WALLET_SIM_HOST",
        flag="--host",
        minLength=1,
    )
    port: int = setting(
        8080, "port; 0 picks a free one", env="WALLET_SIM_PORT", flag="--port", minimum=0, maximum=65535
    )
    journal_size: int = setting(
        10_000,
        "requests kept by the journal (a ring buffer)",
        env="WALLET_SIM_JOURNAL_SIZE",
        flag="--journal-size",
        minimum=1,
        maximum=10_000_000,
    )
    max_body_bytes: int = setting(
        1_048_576, "larger request bodies get the dialect's bad-request answer", minimum=1024, maximum=104_857_600
    )
    log_format: str = setting(
        "text",
        "text or json (every line one JSON record)",
        env="WALLET_SIM_LOG_FORMAT",
        flag="--log-format",
        enum=["text", "json"],
    )
    log_requests: bool = setting(True, "one log line per request (--quiet turns it off)")
    admin_token: str | None = setting(
        None,
        "required as Authorization: Bearer on /_sim (all but health) when set; needed off loopback",
        env="WALLET_SIM_ADMIN_TOKEN",
        flag="--admin-token",
        minLength=8,
    )
    insecure_admin: bool = setting(
        False,
        "leave /_sim open on a non-loopback address, on purpose",
        env="WALLET_SIM_INSECURE_ADMIN",
        flag="--insecure-admin",
    )
    trust_forwarded: bool = setting(False, "deprecated: the same as trusted_proxies: [127.0.0.0/8, ::1/128]")
    trusted_proxies: tuple[Network, ...] = setting(
        (), "CIDRs whose X-Forwarded-For/-Proto/-Host are honoured", convert=_networks, read=_proxies
    )
    allowed_hosts: tuple[str, ...] | None = setting(
        None,
        "Host names /_sim answers besides loopback names and IP literals",
        convert=_optional(lambda hosts: tuple(h.lower() for h in hosts)),
        items={"type": "string", "minLength": 1},
    )
    debug_signatures: bool = setting(False, "show the expected signature of non-demo credentials when refused")
    shutdown_timeout: float = setting(10.0, "seconds requests in flight get on SIGTERM", minimum=0, maximum=600)
    journal_bytes: int = setting(
        67_108_864,
        "bytes the journal holds at most (estimated), the oldest entries dropped first",
        minimum=65_536,
        maximum=17_179_869_184,
    )
    journal_body_bytes: int = setting(
        4096, "bytes of a refused request's body the journal keeps", minimum=0, maximum=1_048_576
    )
    request_timeout: float = setting(
        30.0, "seconds to receive a request's headers and body", exclusiveMinimum=0, maximum=3600
    )
    keepalive_timeout: float = setting(
        15.0, "seconds an idle kept-alive connection stays open", exclusiveMinimum=0, maximum=3600
    )
    max_connections: int = setting(
        1000, "open connections; beyond it a new one is answered 503 and closed", minimum=1, maximum=1_000_000
    )
    max_connections_per_peer: int | None = setting(
        250,  # a quarter of max_connections' default: what a file leaving it out (raw: none) gets
        "open connections of one client address; none: a quarter of max_connections",
        raw=None,
        read=lambda server: server["max_connections_per_peer"] or max(1, server["max_connections"] // 4),
        minimum=1,
        maximum=1_000_000,
    )
    feed_page_bytes: int = setting(
        262_144,
        "bytes of live-feed events a dashboard page may have waiting to be read",
        minimum=4096,
        maximum=1_073_741_824,
    )
    feed_stall_seconds: float = setting(
        5.0,
        "a live-feed page that has not drained (or acknowledged) its events this long loses its slot",
        exclusiveMinimum=0,
        maximum=3600,
    )
    max_tombstones: int = setting(
        100_000,
        "rollbacks/cancels kept that arrived before their bet (oldest forgotten)",
        minimum=0,
        maximum=100_000_000,
    )
    max_transactions: int = setting(
        5_000_000,
        "full transaction rows kept (~360 bytes each); past it the oldest are dropped (their ids remembered)",
        minimum=1,
        maximum=1_000_000_000,
    )
    transaction_retention: float = setting(
        0.0, "seconds a full row is kept at most (0: no age bound, only the count)", minimum=0, maximum=315_360_000
    )
    id_retention: float = setting(
        2_592_000.0,
        "seconds a dropped transaction's id is still refused as a duplicate (30 days)",
        minimum=0,
        maximum=315_360_000,
    )
    max_remembered_ids: int = setting(
        5_000_000,
        "dropped ids remembered at most (~100 bytes each), oldest forgotten",
        minimum=0,
        maximum=1_000_000_000,
    )
    max_players: int = setting(
        1_000_000,
        "players the ledger holds (~750 bytes each); past it new ones are refused",
        minimum=1,
        maximum=1_000_000_000,
    )


@dataclass(frozen=True)
class XproAgent:
    id: str
    secret: str
    api_key: str
    key: bytes
    currency: str
    blocked: bool


def _xpro_agent(entry: dict[str, Any]) -> XproAgent:
    key = xpro_key(entry["api_key"])
    currency, blocked = entry.get("currency", "THB"), bool(entry.get("blocked", False))
    return XproAgent(entry["id"], entry["secret"], entry["api_key"], key, currency, blocked)


@dataclass(frozen=True)
class XproSettings:
    prefix: str = setting("", "path prefix of the XPro routes, e.g. /xpro", convert=_prefix)
    timestamp_skew: int = setting(
        300, "seconds x-timestamp may be off our clock, either side", minimum=1, maximum=86_400
    )
    token_ttl: int = setting(3600, "seconds an access token lives (expiresIn)", minimum=1, maximum=31_536_000)
    token_secret: str = setting(
        "",
        "HS256 key of our tokens; random per process when unset",
        raw=None,
        convert=lambda value: value or secrets.token_urlsafe(32),
        type=["string", "null"],
        minLength=32,
    )
    duplicate_transid: str = setting(
        "per_endpoint", "what a repeated transId gets", enum=["per_endpoint", "replay", "reject"]
    )
    max_nonces: int = setting(1_000_000, "nonces remembered at most, on top of the time window", minimum=1)
    conformance: str = setting("strict", "strict or lenient scorecard judging", enum=_CONFORMANCE)
    agents: dict[str, XproAgent] = tenants(
        "agents besides the demo one (same id: replaces it)",
        Tenants(
            "id",
            ("id", "secret", "api_key"),
            {
                "id": {"type": "string", "minLength": 1, "maxLength": 64},
                "secret": {"type": "string", "minLength": 1},
                "api_key": {"type": "string"},
                "currency": _CURRENCY,
                "blocked": {"type": "boolean"},
            },
            _xpro_agent,
            checked="api_key",
        ),
    )
    token_secret_given: bool = True  # False: ``token_secret`` was drawn at random (a shared store shares one)


@dataclass(frozen=True)
class FizzyBrand:
    public_key: str
    private_key: str
    currency: str


@dataclass(frozen=True)
class FizzySettings:
    prefix: str = setting("", "path prefix of the Fizzy Bubbly routes", convert=_prefix)
    public_url: str | None = setting(
        None,
        "base of the URL the caller signs, e.g. https://wallet.example.com (behind a proxy)",
        convert=_optional(lambda url: url.rstrip("/")),
        pattern="^https?://[^/?#]+$",
    )
    default_balance: Decimal = setting(
        Decimal("1000.00"), "balance of a player created on first sight", convert=_balance
    )
    players: str = setting("auto", "auto: unknown players are created; strict: refused", enum=_POLICY)
    sessions: str = setting("auto", "auto: unknown sessions are accepted; strict: refused", enum=_POLICY)
    session_ttl: int | None = setting(None, "seconds a session lives after first sight; none: forever", minimum=1)
    resolve_timestamp: bool = setting(False, "add resolveTimestamp to 200 bodies")
    max_decimals: int = setting(2, "decimal places an amount may have", minimum=0, maximum=8)
    inactive_games: frozenset[str] = setting(frozenset(), "gameIds answered as inactive")
    conformance: str = setting("strict", "strict or lenient scorecard judging", enum=_CONFORMANCE)
    brands: dict[str, FizzyBrand] = tenants(
        "brands besides the demo one (same public_key: replaces it)",
        Tenants(
            "public_key",
            ("public_key", "private_key"),
            {
                "public_key": {"type": "string", "minLength": 1},
                "private_key": {"type": "string", "minLength": 1},
                "currency": _CURRENCY,
            },
            lambda b: FizzyBrand(b["public_key"], b["private_key"], b.get("currency", "EUR")),
        ),
    )


@dataclass(frozen=True)
class AmbAgent:
    id: str
    currency: str


@dataclass(frozen=True)
class AmbslotSettings:
    prefix: str = setting("", "path prefix of the AMBSlot routes", convert=_prefix)
    default_balance: Decimal = setting(
        Decimal("1000.00"), "balance of a player created on first sight", convert=_balance
    )
    players: str = setting("auto", "auto: unknown players are created; strict: refused", enum=_POLICY)
    games: frozenset[str] | None = setting(
        None, "valid gameIds; none: every game is valid", convert=_optional(frozenset)
    )
    allowed_sources: tuple[Network, ...] | None = setting(
        None, "IPs/CIDRs callers may come from; none: any source", convert=_optional(_networks)
    )
    max_decimals: int = setting(2, "decimal places an amount may have", minimum=0, maximum=8)
    conformance: str = setting("strict", "strict or lenient scorecard judging", enum=_CONFORMANCE)
    agents: dict[str, AmbAgent] = tenants(
        "agents besides the demo one (same id: replaces it)",
        Tenants(
            "id",
            ("id",),
            {"id": {"type": "string", "minLength": 1}, "currency": _CURRENCY},
            lambda a: AmbAgent(a["id"], a.get("currency", "THB")),
        ),
    )


@dataclass(frozen=True)
class ScorecardSettings:
    """How the scorecard judges the client (docs: "Scorecard")."""

    window: float = setting(
        300.0, "seconds after a fault in which the client's follow-up is looked for", exclusiveMinimum=0, maximum=86_400
    )
    client_timeout: float = setting(
        30.0,
        "an answer slower than this (seconds) counts as a timeout the client saw",
        exclusiveMinimum=0,
        maximum=3_600,
    )
    skew_warning: float = setting(
        0.5, "warn when x-timestamp is off by this fraction of timestamp_skew or more", exclusiveMinimum=0, maximum=1
    )


_TENANT_FIELDS: dict[str, str] = {}


def _tenant_field(section: object) -> str:
    """The name of a section's tenants field (``agents``, ``brands``), looked up once per section."""
    name = type(section).__name__
    if name not in _TENANT_FIELDS:
        fields = dataclasses.fields(section)  # type: ignore[arg-type]
        _TENANT_FIELDS[name] = next(f.name for f in fields if getattr(f.metadata.get("setting"), "tenant", None))
    return _TENANT_FIELDS[name]


@dataclass(frozen=True)
class Settings:
    demo: bool = setting(True, "include the demo credentials (false: only the file's, for a shared simulator)")
    store: str = setting(
        "memory",
        "memory (this process), redis://host:port/db?prefix=NAME (shared by replicas, kept over restarts) or "
        "redis+cluster://host:port[,host:port...]?prefix=NAME (a Redis Cluster)",
        env="WALLET_SIM_STORE",
        flag="--store",
        pattern="^(memory|rediss?://.*|rediss?\\+cluster://.*)$",
    )
    server: ServerSettings = field(default_factory=ServerSettings)
    xpro: XproSettings = field(default_factory=XproSettings)
    fizzy: FizzySettings = field(default_factory=FizzySettings)
    ambslot: AmbslotSettings = field(default_factory=AmbslotSettings)
    scorecard: ScorecardSettings = field(default_factory=ScorecardSettings)
    source: str = "(defaults)"

    def tenants(self, dialect: str) -> list[str]:
        """Configured tenants of a dialect, first one first (the default tenant of admin calls)."""
        return list(self.tenant_table(dialect))

    def tenant_table(self, dialect: str) -> dict[str, Any]:
        """A dialect's tenants by id (its ``agents`` or ``brands``)."""
        section: object = getattr(self, dialect)
        table: dict[str, Any] = getattr(section, _tenant_field(section))
        return table

    def currency(self, dialect: str, tenant: str) -> str | None:
        found = self.tenant_table(dialect).get(tenant)
        return found.currency if found else None

    def new_player(self, dialect: str, tenant: str | None = None) -> tuple[str, str, Decimal]:
        """(tenant, currency, balance) of a player created without saying: the first configured tenant,
        its currency, and 0 on the XPro transfer wallet or ``default_balance`` on the seamless ones."""
        tenant = tenant or self.tenants(dialect)[0]
        balance: Decimal = getattr(getattr(self, dialect), "default_balance", Decimal(0))
        return tenant, self.currency(dialect, tenant) or "EUR", balance
