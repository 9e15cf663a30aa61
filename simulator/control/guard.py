"""What the control API refuses before any handler runs (see the README's "Control API" rules).

A page in a browser on another site can send requests to a simulator on ``127.0.0.1``: simple POSTs
(``text/plain``, forms) need no CORS preflight, and DNS rebinding makes a foreign name resolve to the
simulator. So, for every ``/_sim`` call but ``health``:

- the ``Host`` must be a loopback name, an IP literal, the bound host or one of ``server.allowed_hosts``
  (a leading dot allows subdomains, ``*`` allows any) -- unless an admin token is configured and
  ``allowed_hosts`` is not, as a page cannot know the token (403);
- with an admin token, ``Authorization: Bearer <token>`` (any case of ``Bearer``) (401);
- a state-changing call (POST, PUT, PATCH, DELETE) with an ``Origin`` must come from the simulator's own
  origin (403); one with a body must declare JSON or YAML, and the content types a browser sends
  cross-site without a preflight (forms, ``text/plain``) are refused even with an empty body (415); a PUT
  may be ``text/plain`` (``PUT /_sim/scenario`` with ``builtin:NAME``), as no browser sends a PUT
  cross-site without a preflight.
"""

from __future__ import annotations

import hmac
import ipaddress
import urllib.parse

from aiohttp import web

from simulator.config import Settings
from simulator.control.http import PREFIX, AdminError
from simulator.dialects import evidence
from simulator.server.forwarded import origin

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTENT_TYPES = frozenset({"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
#: what a browser sends cross-site without a preflight: refused even with an empty body
BROWSER_SIMPLE = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
LOOPBACK_NAMES = frozenset({"localhost"})
OPEN = frozenset({f"{PREFIX}/health"})


def _hostname(host: str) -> str:
    """``Host`` without its port, lower case (``[::1]:80`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(name: str, settings: Settings, token: str | None) -> bool:
    allowed = settings.server.allowed_hosts
    if allowed is None and token:
        return True
    if _is_ip(name) or name in LOOPBACK_NAMES or name == settings.server.host.lower():
        return True
    return any(a == "*" or a == name or (a.startswith(".") and name.endswith(a)) for a in allowed or ())


def check(request: web.Request, settings: Settings, token: str | None, *, token_required: bool = True) -> None:
    """Raise AdminError for a request the control API must not serve. ``token_required`` is false for the
    dashboard page and its assets, which hold no data (every call they make needs the token)."""
    if request.path in OPEN:
        return
    _, host = origin(request, settings.server.trusted_proxies)
    if not evidence.is_text(host) or not host_allowed(_hostname(host), settings, token):
        raise AdminError(
            403,
            f"Host {evidence.clean(host, 100)!r} is not one the control API answers to (a guard against DNS "
            "rebinding); add it to server.allowed_hosts",
        )
    if token and token_required:
        given = evidence.bearer(request.headers.get("Authorization", "")) or ""
        if not evidence.is_text(given) or not hmac.compare_digest(given.encode(), token.encode()):
            raise AdminError(401, "this call needs Authorization: Bearer <admin token>")
    if request.method not in STATE_CHANGING:
        return
    sent_from = request.headers.get("Origin")
    if sent_from is not None:
        parts = urllib.parse.urlsplit(sent_from.strip())
        if parts.netloc.lower() != host.lower():
            raise AdminError(403, f"Origin {evidence.clean(sent_from, 100)!r} is not this simulator's own origin")
    kind = request.content_type
    has_body = request.body_exists and request.content_length != 0
    simple = request.headers.get("Content-Type") is not None and kind in BROWSER_SIMPLE
    if request.method == "PUT" and request.path == f"{PREFIX}/scenario" and kind == "text/plain":
        return  # a browser preflights every PUT, whatever its type: ``builtin:NAME`` may be sent as plain text
    if (has_body or simple) and kind not in CONTENT_TYPES and not kind.endswith("+json"):
        raise AdminError(
            415,
            f"Content-Type {evidence.clean(request.content_type, 100)!r} is not accepted: send application/json "
            "(or application/yaml for PUT /_sim/scenario); curl: -H 'Content-Type: application/json'",
        )
