"""Settings: every default lives here. A YAML config file (``--config``) and command-line flags override.

The demo credentials of PROTOCOLS.md section 5 are part of the defaults, so ``make run`` with no config
can be called at once. A config file *adds* agents and brands; one with the id of a demo agent replaces it,
and ``demo: false`` removes the demo credentials altogether (for a simulator reachable by others).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.config import yamlsrc
from simulator.errors import SourceError
from simulator.money import parse_amount

DIALECTS = ("xpro", "fizzy", "ambslot")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: what the deprecated ``trust_forwarded: true`` stands for: a proxy on this host
LOOPBACK_PROXIES = ("127.0.0.0/8", "::1/128")

# The dashboard's live feed (GET /_sim/events): one batch per interval (seconds) of at most UI_FEED_BATCH
# entries, the newest (older ones are counted as dropped); UI_FEED_BACKLOG entries when a page connects;
# at most UI_FEED_PAGES pages watching at once.
UI_FEED_INTERVAL = 0.25
UI_FEED_BATCH = 100
UI_FEED_BACKLOG = 100
UI_FEED_PAGES = 16

DEMO: dict[str, Any] = {
    "xpro": {
        "agents": [
            {
                "id": "demo",
                "secret": "demo-secret",
                "api_key": "0123456789abcdef0123456789abcdef",
                "currency": "THB",
            }
        ]
    },
    "fizzy": {"brands": [{"public_key": "demo-public-key", "private_key": "demo-private-key", "currency": "EUR"}]},
    "ambslot": {"agents": [{"id": "demo", "currency": "THB"}]},
}

DEFAULTS: dict[str, Any] = {
    "demo": True,
    # where the state lives: "memory" (this process) or "redis://host:port/db?prefix=NAME" (shared by
    # replicas, kept over restarts; see simulator/store.py). WALLET_SIM_STORE and --store override it.
    "store": "memory",
    "server": {
        "host": "127.0.0.1",
        "port": 8080,
        "journal_size": 10_000,  # requests kept by the journal (a ring buffer)
        "journal_bytes": 67_108_864,  # and at most this many bytes of them (estimated), the oldest dropped first
        "journal_body_bytes": 4096,  # bytes of a refused request's body the journal keeps (what arrived)
        "max_body_bytes": 1_048_576,  # larger bodies get the dialect's bad-request answer
        "log_format": "text",  # text | json
        "log_requests": True,  # one line per request
        "admin_token": None,  # required for /_sim when bound to a non-loopback address
        "insecure_admin": False,  # explicit opt-out of that requirement
        "trust_forwarded": False,  # deprecated: the same as trusted_proxies: [127.0.0.0/8, ::1/128]
        "trusted_proxies": [],  # CIDRs whose X-Forwarded-For/-Proto/-Host are honoured
        "allowed_hosts": None,  # Host names /_sim answers besides loopback names and IP literals
        "debug_signatures": False,  # show the expected signature of non-demo credentials when refused
        "shutdown_timeout": 10.0,  # seconds requests in flight get on SIGTERM
        "request_timeout": 30.0,  # seconds to receive a request's headers and body (and a new connection's first)
        "keepalive_timeout": 15.0,  # seconds an idle kept-alive connection stays open
        "max_connections": 1000,  # open connections; beyond it a new one is answered 503 and closed
        "max_tombstones": 100_000,  # rollbacks/cancels kept that arrived before their bet (oldest forgotten)
        "max_transactions": 5_000_000,  # the ledger's capacity (~300 bytes each); past it new ones are refused
        "max_players": 1_000_000,  # players the ledger holds (~750 bytes each); past it new ones are refused
    },
    "xpro": {
        "prefix": "",
        "timestamp_skew": 300,  # seconds either side of our clock
        "token_ttl": 3600,  # seconds; expiresIn
        "token_secret": None,  # HS256 key for our tokens; random per process when unset
        "duplicate_transid": "per_endpoint",  # per_endpoint | replay | reject
        "max_nonces": 1_000_000,  # hard cap on remembered nonces, on top of the time window
        "conformance": "strict",  # strict | lenient (see the README's "Scorecard")
        "agents": [],
    },
    "fizzy": {
        "prefix": "",
        "public_url": None,  # e.g. https://wallet.example.com: base of the URL the caller signs
        "default_balance": "1000.00",
        "players": "auto",  # auto | strict
        "sessions": "auto",  # auto | strict
        "session_ttl": None,  # seconds a session lives after first sight; None: forever
        "resolve_timestamp": False,  # add resolveTimestamp to 200 bodies
        "max_decimals": 2,
        "inactive_games": [],
        "conformance": "strict",  # strict | lenient
        "brands": [],
    },
    "ambslot": {
        "prefix": "",
        "default_balance": "1000.00",
        "players": "auto",  # auto | strict
        "games": None,  # list of valid gameId; None: every game is valid
        "allowed_sources": None,  # list of IPs/CIDRs; None: any source
        "max_decimals": 2,
        "conformance": "strict",  # strict | lenient
        "agents": [],
    },
    "scorecard": {
        "window": 300,  # seconds after a fault in which the client's follow-up is looked for
        "client_timeout": 30,  # an answer slower than this counts as a timeout the client saw
        "skew_warning": 0.5,  # warn when x-timestamp is off by this fraction of timestamp_skew or more
    },
}

# `python -m simulator certify`: what the runner uses when neither flag, environment nor target file says
CERTIFY_DEFAULTS: dict[str, Any] = {
    "amount": "1.00",  # the stake of every case (whole units keep a float-based wallet exact but in precision.cents)
    "timeout": 10.0,  # seconds per call
    "game": "certify-game",
    "concurrency": 20,  # parallel calls of the concurrency.* cases and of load mode
    "latency_budget": 1.0,  # seconds: a p99 above it on any endpoint is a warning
    "abandon_wait": 2.0,  # seconds the runner watches the balance after abandoning a call
    "load_duplicates": 0.1,  # load mode: share of rounds whose debit is sent twice
    "load_abandoned": 0.05,  # ... abandoned and retried
    "load_rollbacks": 0.1,  # ... rolled back (cancelled) instead of settled
    "load_max_seconds": 300.0,  # load mode stops by itself after this long
}

_CURRENCY = {"type": "string", "pattern": "^[A-Z0-9]{2,10}$"}
_AMOUNT = {"type": ["string", "number"]}
_POLICY = {"enum": ["auto", "strict"]}
_CONFORMANCE = {"enum": ["strict", "lenient"]}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "demo": {"type": "boolean"},
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "journal_size": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 104_857_600},
                "log_format": {"enum": ["text", "json"]},
                "log_requests": {"type": "boolean"},
                "admin_token": {"type": ["string", "null"], "minLength": 8},
                "insecure_admin": {"type": "boolean"},
                "trust_forwarded": {"type": "boolean"},
                "trusted_proxies": {"type": "array", "items": {"type": "string"}},
                "allowed_hosts": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
                "debug_signatures": {"type": "boolean"},
                "shutdown_timeout": {"type": "number", "minimum": 0, "maximum": 600},
                "journal_bytes": {"type": "integer", "minimum": 65_536, "maximum": 17_179_869_184},
                "journal_body_bytes": {"type": "integer", "minimum": 0, "maximum": 1_048_576},
                "request_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "keepalive_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "max_connections": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                "max_tombstones": {"type": "integer", "minimum": 0, "maximum": 100_000_000},
                "max_transactions": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
                "max_players": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
            },
        },
        "xpro": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "prefix": {"type": "string"},
                "timestamp_skew": {"type": "integer", "minimum": 1, "maximum": 86_400},
                "token_ttl": {"type": "integer", "minimum": 1, "maximum": 31_536_000},
                "token_secret": {"type": ["string", "null"], "minLength": 32},
                "duplicate_transid": {"enum": ["per_endpoint", "replay", "reject"]},
                "max_nonces": {"type": "integer", "minimum": 1},
                "conformance": _CONFORMANCE,
                "agents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "secret", "api_key"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1, "maxLength": 64},
                            "secret": {"type": "string", "minLength": 1},
                            "api_key": {"type": "string"},
                            "currency": _CURRENCY,
                            "blocked": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "fizzy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "prefix": {"type": "string"},
                "public_url": {"type": ["string", "null"], "pattern": "^https?://[^/?#]+$"},
                "default_balance": _AMOUNT,
                "players": _POLICY,
                "sessions": _POLICY,
                "session_ttl": {"type": ["integer", "null"], "minimum": 1},
                "resolve_timestamp": {"type": "boolean"},
                "max_decimals": {"type": "integer", "minimum": 0, "maximum": 8},
                "inactive_games": {"type": "array", "items": {"type": "string"}},
                "conformance": _CONFORMANCE,
                "brands": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["public_key", "private_key"],
                        "properties": {
                            "public_key": {"type": "string", "minLength": 1},
                            "private_key": {"type": "string", "minLength": 1},
                            "currency": _CURRENCY,
                        },
                    },
                },
            },
        },
        "ambslot": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "prefix": {"type": "string"},
                "default_balance": _AMOUNT,
                "players": _POLICY,
                "games": {"type": ["array", "null"], "items": {"type": "string"}},
                "allowed_sources": {"type": ["array", "null"], "items": {"type": "string"}},
                "max_decimals": {"type": "integer", "minimum": 0, "maximum": 8},
                "conformance": _CONFORMANCE,
                "agents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1},
                            "currency": _CURRENCY,
                        },
                    },
                },
            },
        },
        "store": {"type": "string", "pattern": "^(memory|rediss?://.*)$"},
        "scorecard": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "window": {"type": "number", "exclusiveMinimum": 0, "maximum": 86_400},
                "client_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3_600},
                "skew_warning": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            },
        },
    },
}


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


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    journal_size: int
    max_body_bytes: int
    log_format: str
    log_requests: bool
    admin_token: str | None
    insecure_admin: bool
    trust_forwarded: bool
    shutdown_timeout: float
    max_tombstones: int
    journal_bytes: int = DEFAULTS["server"]["journal_bytes"]
    journal_body_bytes: int = DEFAULTS["server"]["journal_body_bytes"]
    trusted_proxies: tuple[Network, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None
    debug_signatures: bool = False
    request_timeout: float = DEFAULTS["server"]["request_timeout"]
    keepalive_timeout: float = DEFAULTS["server"]["keepalive_timeout"]
    max_connections: int = DEFAULTS["server"]["max_connections"]
    max_transactions: int = DEFAULTS["server"]["max_transactions"]
    max_players: int = DEFAULTS["server"]["max_players"]


@dataclass(frozen=True)
class XproAgent:
    id: str
    secret: str
    api_key: str
    key: bytes
    currency: str
    blocked: bool


@dataclass(frozen=True)
class XproSettings:
    prefix: str
    timestamp_skew: int
    token_ttl: int
    token_secret: str
    duplicate_transid: str
    max_nonces: int
    agents: dict[str, XproAgent]
    conformance: str = "strict"
    token_secret_given: bool = True  # False: ``token_secret`` was drawn at random (a shared store shares one)


@dataclass(frozen=True)
class FizzyBrand:
    public_key: str
    private_key: str
    currency: str


@dataclass(frozen=True)
class FizzySettings:
    prefix: str
    public_url: str | None
    default_balance: Decimal
    players: str
    sessions: str
    session_ttl: int | None
    resolve_timestamp: bool
    max_decimals: int
    inactive_games: frozenset[str]
    brands: dict[str, FizzyBrand]
    conformance: str = "strict"


@dataclass(frozen=True)
class AmbAgent:
    id: str
    currency: str


@dataclass(frozen=True)
class AmbslotSettings:
    prefix: str
    default_balance: Decimal
    players: str
    games: frozenset[str] | None
    allowed_sources: tuple[Network, ...] | None
    max_decimals: int
    agents: dict[str, AmbAgent]
    conformance: str = "strict"


@dataclass(frozen=True)
class ScorecardSettings:
    """How the scorecard judges the client (README "Scorecard")."""

    window: float = 300.0
    client_timeout: float = 30.0
    skew_warning: float = 0.5


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    xpro: XproSettings
    fizzy: FizzySettings
    ambslot: AmbslotSettings
    source: str = "(defaults)"
    scorecard: ScorecardSettings = ScorecardSettings()
    store: str = DEFAULTS["store"]

    def tenants(self, dialect: str) -> list[str]:
        """Configured tenants of a dialect, first one first (the default tenant of admin calls)."""
        if dialect == "xpro":
            return list(self.xpro.agents)
        if dialect == "fizzy":
            return list(self.fizzy.brands)
        return list(self.ambslot.agents)

    def currency(self, dialect: str, tenant: str) -> str | None:
        if dialect == "xpro":
            agent = self.xpro.agents.get(tenant)
            return agent.currency if agent else None
        if dialect == "fizzy":
            brand = self.fizzy.brands.get(tenant)
            return brand.currency if brand else None
        amb = self.ambslot.agents.get(tenant)
        return amb.currency if amb else None

    def new_player(self, dialect: str, tenant: str | None = None) -> tuple[str, str, Decimal]:
        """(tenant, currency, balance) of a player created without saying: the first configured tenant,
        its currency, and 0 on the XPro transfer wallet or ``default_balance`` on the seamless ones."""
        tenant = tenant or self.tenants(dialect)[0]
        balance = {"xpro": Decimal(0), "fizzy": self.fizzy.default_balance, "ambslot": self.ambslot.default_balance}
        return tenant, self.currency(dialect, tenant) or "EUR", balance[dialect]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _with_tenants(raw: dict[str, Any], list_key: str, id_key: str, dialect: str, demo: bool) -> list[Any]:
    """Demo tenants (unless ``demo: false``) then the file's, a file entry replacing a demo one by id."""
    entries: dict[str, Any] = {}
    if demo:
        for entry in DEMO[dialect][list_key]:
            entries[entry[id_key]] = entry
    for entry in raw[dialect][list_key]:
        entries[entry[id_key]] = entry
    return list(entries.values())


def build(raw_file: dict[str, Any] | None, source: yamlsrc.SourceMap | None = None) -> Settings:
    """Settings from a parsed config document (``None``: the defaults). Raises :class:`SourceError`."""
    raw_file = raw_file or {}
    src = source or yamlsrc.SourceMap("(defaults)", None)
    # nothing to check in an empty document (and no jsonschema import on the plain start-up path)
    problems = yamlsrc.schema_problems(raw_file, CONFIG_SCHEMA, src) if raw_file else []
    if problems:
        raise SourceError(problems)
    raw = _merge(DEFAULTS, raw_file)
    demo = bool(raw["demo"])

    def check(path: list[str | int], convert: Callable[[], Any]) -> Any:
        try:
            return convert()
        except ValueError as exc:
            problems.append(src.where(path, str(exc)))
            return None

    xpro_agents: dict[str, XproAgent] = {}
    file_xpro = raw_file.get("xpro", {}).get("agents", [])
    for entry in _with_tenants(raw, "agents", "id", "xpro", demo):
        index = next((i for i, e in enumerate(file_xpro) if e.get("id") == entry["id"]), None)
        path: list[str | int] = ["xpro", "agents", index, "api_key"] if index is not None else ["xpro"]
        key = check(path, functools.partial(xpro_key, entry["api_key"]))
        xpro_agents[entry["id"]] = XproAgent(
            id=entry["id"],
            secret=entry["secret"],
            api_key=entry["api_key"],
            key=key or b"",
            currency=entry.get("currency", "THB"),
            blocked=bool(entry.get("blocked", False)),
        )
    brands = {
        b["public_key"]: FizzyBrand(b["public_key"], b["private_key"], b.get("currency", "EUR"))
        for b in _with_tenants(raw, "brands", "public_key", "fizzy", demo)
    }
    amb_agents = {
        a["id"]: AmbAgent(a["id"], a.get("currency", "THB"))
        for a in _with_tenants(raw, "agents", "id", "ambslot", demo)
    }

    def networks(values: list[str]) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(v, strict=False) for v in values)

    f, a, x, s = raw["fizzy"], raw["ambslot"], raw["xpro"], raw["server"]
    fizzy_balance = check(["fizzy", "default_balance"], lambda: _balance(f["default_balance"]))
    amb_balance = check(["ambslot", "default_balance"], lambda: _balance(a["default_balance"]))
    sources = a["allowed_sources"]
    allowed = check(["ambslot", "allowed_sources"], lambda: networks(sources)) if sources is not None else None
    proxies = s["trusted_proxies"] or (list(LOOPBACK_PROXIES) if s["trust_forwarded"] else [])
    trusted = check(["server", "trusted_proxies"], lambda: networks(proxies))
    for dialect, label in (("xpro", "agents"), ("fizzy", "brands"), ("ambslot", "agents")):
        if not (xpro_agents, brands, amb_agents)[DIALECTS.index(dialect)]:
            problems.append(src.where([dialect, label], f"no {label} configured (and demo: false)"))
    if problems:
        raise SourceError(problems)

    return Settings(
        server=ServerSettings(
            host=s["host"],
            port=s["port"],
            journal_size=s["journal_size"],
            max_body_bytes=s["max_body_bytes"],
            log_format=s["log_format"],
            log_requests=s["log_requests"],
            admin_token=s["admin_token"],
            insecure_admin=s["insecure_admin"],
            trust_forwarded=s["trust_forwarded"],
            shutdown_timeout=float(s["shutdown_timeout"]),
            journal_bytes=s["journal_bytes"],
            journal_body_bytes=s["journal_body_bytes"],
            trusted_proxies=trusted,
            allowed_hosts=tuple(h.lower() for h in s["allowed_hosts"]) if s["allowed_hosts"] is not None else None,
            debug_signatures=s["debug_signatures"],
            request_timeout=float(s["request_timeout"]),
            keepalive_timeout=float(s["keepalive_timeout"]),
            max_connections=s["max_connections"],
            max_tombstones=s["max_tombstones"],
            max_transactions=s["max_transactions"],
            max_players=s["max_players"],
        ),
        xpro=XproSettings(
            prefix=_prefix(x["prefix"]),
            timestamp_skew=x["timestamp_skew"],
            token_ttl=x["token_ttl"],
            token_secret=x["token_secret"] or secrets.token_urlsafe(32),
            token_secret_given=bool(x["token_secret"]),
            duplicate_transid=x["duplicate_transid"],
            max_nonces=x["max_nonces"],
            agents=xpro_agents,
            conformance=x["conformance"],
        ),
        fizzy=FizzySettings(
            prefix=_prefix(f["prefix"]),
            public_url=f["public_url"].rstrip("/") if f["public_url"] else None,
            default_balance=fizzy_balance,
            players=f["players"],
            sessions=f["sessions"],
            session_ttl=f["session_ttl"],
            resolve_timestamp=f["resolve_timestamp"],
            max_decimals=f["max_decimals"],
            inactive_games=frozenset(f["inactive_games"]),
            brands=brands,
            conformance=f["conformance"],
        ),
        ambslot=AmbslotSettings(
            prefix=_prefix(a["prefix"]),
            default_balance=amb_balance,
            players=a["players"],
            games=frozenset(a["games"]) if a["games"] is not None else None,
            allowed_sources=allowed,
            max_decimals=a["max_decimals"],
            agents=amb_agents,
            conformance=a["conformance"],
        ),
        source=src.filename,
        store=raw["store"],
        scorecard=ScorecardSettings(
            window=float(raw["scorecard"]["window"]),
            client_timeout=float(raw["scorecard"]["client_timeout"]),
            skew_warning=float(raw["scorecard"]["skew_warning"]),
        ),
    )


def load(path: str | None) -> Settings:
    """Settings from a config file (``None``: the defaults). Raises :class:`SourceError`."""
    if path is None:
        return build(None)
    data, source = yamlsrc.read(path)
    if data is not None and not isinstance(data, dict):
        raise SourceError([source.where([], "a config file is a mapping (server:, xpro:, fizzy:, ambslot:)")])
    return build(data, source)


def from_dict(data: dict[str, Any]) -> Settings:
    """Settings from a plain dict (tests, the pytest plugin)."""
    return build(data, yamlsrc.SourceMap("(dict)", None))
