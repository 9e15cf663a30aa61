"""Who is calling, and which URL they used, when a reverse proxy stands in between.

``X-Forwarded-*`` headers are honoured only when the direct peer is one of ``server.trusted_proxies``:
anyone else could write them. Proxies *append* to ``X-Forwarded-For``, so the client is the right-most
hop that is not a trusted proxy; the left-most entries are whatever the client chose to send. For
``X-Forwarded-Proto`` and ``-Host`` the right-most entry is the one the nearest (trusted) proxy wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from simulator.config import Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(text: str, proxies: Sequence[Network]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in proxies)


def peer_is_proxy(request: web.Request, proxies: Sequence[Network]) -> bool:
    return bool(proxies) and _trusted(request.remote or "", proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The caller's address: the direct peer, or behind trusted proxies the right-most untrusted hop of
    ``X-Forwarded-For`` (the left-most one when every hop is a trusted proxy)."""
    peer = request.remote or ""
    if not peer_is_proxy(request, proxies):
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            address = _address(hop)
            return str(address) if address is not None else hop
    return hops[0] if hops else peer


def _last(request: web.Request, name: str) -> str | None:
    values = [v.strip() for value in request.headers.getall(name, []) for v in value.split(",") if v.strip()]
    return values[-1] if values else None


def origin(request: web.Request, proxies: Sequence[Network]) -> tuple[str, str]:
    """``(scheme, host)`` the caller used: the forwarded ones from a trusted proxy, else the request's own."""
    scheme, host = request.scheme, request.host
    if peer_is_proxy(request, proxies):
        scheme = _last(request, "X-Forwarded-Proto") or scheme
        host = _last(request, "X-Forwarded-Host") or host
    return scheme, host
