"""server.forwarded: X-Forwarded-* honoured only from a trusted proxy."""

from __future__ import annotations

import ipaddress
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from simulator.server.forwarded import client_address, origin

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def request(peer: str, headers: dict[str, str]) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 1234) if name == "peername" else default
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_address(request("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"}), PROXIES) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() -> None:
    forged_then_real = {"X-Forwarded-For": "1.1.1.1, 198.51.100.7, 10.0.0.2"}
    assert client_address(request("10.0.0.1", forged_then_real), PROXIES) == "198.51.100.7"


def test_origin_uses_the_nearest_proxy_s_scheme_and_host() -> None:
    headers = {"Host": "internal:8080", "X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "wallet.example"}
    assert origin(request("10.0.0.1", headers), PROXIES) == ("https", "wallet.example")
    assert origin(request("203.0.113.9", headers), PROXIES) == ("http", "internal:8080")
