"""What the journal keeps of a request beyond its decoded form: what arrived, and what a refused signature
was computed over (so an integrator can debug a signature from the journal alone), plus the memory an
entry holds, estimated from the byte lengths at hand.

Everything here ends up in JSON: text is made valid UTF-8 (header bytes that were not arrive as lone
surrogates) and bounded, so one hostile request can neither break ``GET /_sim/journal`` nor fill memory.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from simulator.errors import AuthFailed
from simulator.operations import Operation

#: headers whose values are credentials: kept as their scheme (if any) and length only
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "signature", "x-signature", "x-admin-token"}
)
MAX_HEADERS = 64
MAX_HEADER_VALUE = 512
ENTRY_OVERHEAD = 1024  # the entry, its Operation and response body, roughly
# What one JSON token costs once decoded into Python objects (CPython 3.11, 64-bit), for held(): a dict
# (an object), a list (an array), one item (the value and its slot: a Decimal is 104 bytes, a short str
# about 50), one key (a str; repeated keys are shared by the decoder, so this errs on the safe side).
DICT_BYTES, LIST_BYTES, ITEM_BYTES, KEY_BYTES = 184, 64, 120, 60
MAX_DETAIL = 4096  # characters of a refusal's detail the journal keeps
SHORT = 120  # characters of a canonical string shown in X-Sim-Detail


def clean(text: str, limit: int | None = None) -> str:
    """Valid UTF-8 text (undecodable bytes become U+FFFD), at most ``limit`` characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if limit is not None and len(text) > limit:
        return text[:limit] + f"…({len(text)} chars)"
    return text


def is_text(value: str) -> bool:
    """Whether a header value arrived as UTF-8 (aiohttp keeps other bytes as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header(request: web.Request, name: str) -> str:
    """A header the caller authenticates with; bytes that are not UTF-8 refuse the request (AuthFailed)."""
    value = request.headers.get(name, "")
    if not is_text(value):
        raise AuthFailed(f"header {name} is not UTF-8 text")
    return value


def bearer(header: str) -> str | None:
    """The token of ``Authorization: Bearer <token>``; the scheme is case-insensitive (RFC 7235)."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def redact(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return clean(value, MAX_HEADER_VALUE)
    scheme, sep, rest = value.partition(" ")
    if sep and scheme.isalpha() and rest:  # "Bearer <token>": the scheme helps, the token is the secret
        return f"{clean(scheme, 16)} <redacted, {len(rest.strip())} chars>"
    return f"<redacted, {len(value)} chars>"


def received(request: web.Request, body: bytes, cap: int) -> dict[str, Any]:
    """What arrived: method, path, headers (secrets redacted) and the body's first ``cap`` bytes."""
    headers: dict[str, str] = {}
    for name, value in list(request.headers.items())[:MAX_HEADERS]:
        key = clean(str(name), 64)
        headers[key] = f"{headers[key]}, {redact(name, value)}" if key in headers else redact(name, value)
    return {
        "method": request.method,
        "path": clean(request.raw_path, MAX_HEADER_VALUE),
        "headers": headers,
        "body": body[:cap].decode("utf-8", "replace"),
        "body_bytes": len(body),
        "truncated": len(body) > cap,
    }


def held(text: bytes) -> int:
    """The memory the decoded form of the JSON ``text`` holds, estimated from its tokens: a body of many
    small objects costs some 25 times its length once decoded (``{"k":1}`` is 7 bytes of text, about 300
    of objects). Counting the structural characters runs at C speed, whatever the size; characters inside
    strings count too, which only errs on the high side."""
    items = text.count(b",") + 1
    return (
        len(text)
        + DICT_BYTES * text.count(b"{")
        + LIST_BYTES * text.count(b"[")
        + ITEM_BYTES * items
        + KEY_BYTES * text.count(b":")
    )


def size(
    op: Operation,
    body: bytes,
    detail: str | None,
    kept: dict[str, Any] | None,
    diagnostics: dict[str, Any] | None,
    decoded: bytes | None = None,
) -> int:
    """The memory an entry holds, estimated: a fixed overhead, the decoded request when it is kept (from
    ``decoded``, the JSON text it was decoded from, ``body`` by default), the identifiers and the detail,
    and the text of what arrived and of the diagnostics."""
    request = held(body if decoded is None else decoded) if op.request is not None else 0
    total = ENTRY_OVERHEAD + request + len(detail or "")
    total += sum(len(v) for v in (op.agent, op.player, op.transaction, op.round, op.game) if v)
    if kept is not None:
        total += len(kept["body"]) + sum(len(k) + len(v) for k, v in kept["headers"].items())
    if diagnostics is not None:
        total += sum(len(v) for v in diagnostics.values() if isinstance(v, str))
    return total


def _short(text: str) -> str:
    shown = text.replace("\n", "\\n")
    # "..." rather than "…": the detail is also the ASCII-only X-Sim-Detail header, and both must read the same
    return shown if len(shown) <= SHORT else f"{shown[: SHORT - 22]}...{shown[-19:]}"


def signature_refused(message: str, canonical: str, body: bytes, expected: str, *, show: bool, cap: int) -> AuthFailed:
    """An AuthFailed saying what was computed: the canonical string and body MD5 always, the expected
    signature only when ``show`` (credentials that are not secret). Shortened in the detail (the
    ``X-Sim-Detail`` header), in full (up to ``cap`` characters) in the journal's diagnostics."""
    md5 = hashlib.md5(body).hexdigest().upper()
    info: dict[str, Any] = {"canonical": clean(canonical, max(cap, 1024)), "body_md5": md5}
    detail = f"{message}; computed over '{_short(clean(canonical))}'; body MD5 {md5}"
    if show:
        info["expected_signature"] = expected
        detail += f"; expected {expected}"
    return AuthFailed(detail, info=info)
