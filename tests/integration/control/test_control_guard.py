"""Forwarded headers only from trusted proxies (issue 9 item 14), and the control API refuses what a
browser on a foreign page could send it (item 15)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import config
from simulator.dialects.crypto import fizzy_signature
from simulator.errors import SourceError
from tests.conftest import Harness, Start

BALANCE = {"username": "member001", "agentId": "demo"}


async def amb_code(h: Harness, forwarded: str) -> Any:
    headers = {"X-Forwarded-For": forwarded}
    async with h.http.post(h.url + "/balance", json=BALANCE, headers=headers) as response:
        return (await response.json())["status"]["code"]


async def test_the_client_is_the_rightmost_untrusted_hop(start: Start) -> None:
    h = await start({"server": {"trusted_proxies": ["127.0.0.0/8"]}, "ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    assert await amb_code(h, "10.9.9.9") == 0  # one hop: our proxy saw 10.9.9.9
    assert await amb_code(h, "10.9.9.9, 203.0.113.5") == 998  # the client wrote 10.9.9.9; it is 203.0.113.5
    assert await amb_code(h, "203.0.113.5, 10.1.2.3, 127.0.0.5") == 0  # trusted hops are skipped
    assert await amb_code(h, "junk, 10.1.2.3") == 0
    assert await amb_code(h, "10.1.2.3, junk") == 998  # an unparsable hop is untrusted and not allowed


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start: Start) -> None:
    h = await start({"server": {"trusted_proxies": ["192.0.2.0/24"]}, "ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    assert await amb_code(h, "10.9.9.9") == 998  # we are talking to 127.0.0.1, which is not a proxy of ours
    plain = await start({"ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    assert await amb_code(plain, "10.9.9.9") == 998


async def test_trust_forwarded_means_a_proxy_on_this_host(start: Start) -> None:
    h = await start({"server": {"trust_forwarded": True}, "ambslot": {"allowed_sources": ["10.0.0.0/8"]}})
    assert await amb_code(h, "10.9.9.9, 203.0.113.5") == 998  # no longer the left-most, client-written entry
    assert await amb_code(h, "203.0.113.5, 10.9.9.9") == 0
    assert h.sim.settings.server.trusted_proxies  # loopback


async def test_fizzy_forwarded_host_is_the_rightmost(start: Start) -> None:
    h = await start({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
    body = b'{"playerId":"p-1","sessionId":"s","currency":"EUR"}'
    url = "https://casino.example/wallet/balance"
    headers = {
        "Public-Key": "demo-public-key",
        "Signature": fizzy_signature("demo-private-key", "POST", url, body),
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil.example, casino.example",
    }
    async with h.http.post(h.url + "/wallet/balance", data=body, headers=headers) as response:
        assert response.status == 200


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(SourceError, match="trusted_proxies"):
        config.from_dict({"server": {"trusted_proxies": ["not-a-network"]}})


# item 15


async def post(h: Harness, path: str, body: bytes | None = None, **headers: str) -> tuple[int, Any]:
    async with h.http.post(h.url + path, data=body, headers=headers) as response:
        return response.status, await response.json()


def CT(kind: str) -> dict[str, str]:
    return {"Content-Type": kind}


async def test_cross_site_reset_is_refused(h: Harness) -> None:
    await h.admin("PUT", "/_sim/players/fizzy/p-9", {"balance": 5})
    status, answer = await post(h, "/_sim/reset", b"x", **CT("text/plain"))
    assert status == 415 and "Content-Type" in answer["error"]
    status, answer = await post(h, "/_sim/reset", None, Origin="https://evil.example")
    assert status == 403 and "Origin" in answer["error"]
    status, answer = await post(h, "/_sim/reset", None, Origin="null", **CT("application/json"))
    assert status == 403
    for kind in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, answer = await post(h, "/_sim/reset", None, **CT(kind))
        assert status == 415
    assert h.sim.ledger.player("fizzy", "demo-public-key", "p-9") is not None  # nothing was wiped


async def test_same_origin_json_and_plain_tools_pass(h: Harness) -> None:
    status, _ = await post(h, "/_sim/reset", b"{}", Origin=h.url, **CT("application/json"))
    assert status == 200
    status, _ = await post(h, "/_sim/reset")  # curl -X POST: no body, no content type
    assert status == 200
    status, _ = await h.admin("PUT", "/_sim/scenario", text="name: y\n")
    assert status == 200
    async with h.http.put(
        h.url + "/_sim/scenario", data=b"name: z\n", headers={"Content-Type": "text/yaml; charset=utf-8"}
    ) as response:
        assert response.status == 200
    async with h.http.get(h.url + "/_sim/players", headers={"Origin": "https://evil.example"}) as response:
        assert response.status == 200  # reading is not state-changing (and CORS keeps the answer from the page)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil"])
async def test_foreign_host_names_are_refused(h: Harness, host: str) -> None:
    async with h.http.get(h.url + "/_sim/players", headers={"Host": host}) as response:
        assert response.status == 403 and "Host" in (await response.json())["error"]
    async with h.http.get(h.url + "/_sim/health", headers={"Host": host}) as response:
        assert response.status == 200  # health stays open (load balancers)


async def test_allowed_hosts_and_loopback_names(start: Start) -> None:
    h = await start({"server": {"allowed_hosts": ["sim.internal", ".staging.example"]}})
    for host in ("sim.internal:8080", "a.staging.example", "localhost:1", "127.0.0.1", "[::1]:80"):
        async with h.http.get(h.url + "/_sim/players", headers={"Host": host}) as response:
            assert response.status == 200, host
    async with h.http.get(h.url + "/_sim/players", headers={"Host": "staging.example.evil"}) as response:
        assert response.status == 403


async def test_with_an_admin_token_any_host_name_is_accepted(start: Start) -> None:
    h = await start(admin_token="admin-token-1")
    headers = {"Host": "sim.staging.example", "Authorization": "Bearer admin-token-1"}
    async with h.http.get(h.url + "/_sim/players", headers=headers) as response:
        assert response.status == 200
