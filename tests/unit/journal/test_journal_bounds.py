"""The journal is bounded by bytes as well as entries, keeps what arrived for refused requests (secrets
redacted, the body capped), and a refused signature says what the simulator computed (issue 9 item 4,
issue 12 items 3 and 4)."""

from __future__ import annotations

import hashlib

from simulator import jsonio
from simulator.dialects.crypto import fizzy_signature, fizzy_string_to_sign, xpro_signature
from simulator.journal import Entry, Journal
from tests.conftest import Harness, Start


def entry(seq: int, size: int) -> Entry:
    return Entry(seq, 0.0, "xpro", "/v2/auth", None, 200, None, 0, None, None, None, 1.0, size=size)


def test_journal_evicts_the_oldest_by_bytes_too() -> None:
    journal = Journal(size=100, max_bytes=10_000)
    for seq in range(1, 21):
        journal.append(entry(seq, 1_000))
    assert len(journal) == 10 and journal.bytes == 10_000
    assert next(iter(journal)).seq == 11
    journal.append(entry(21, 50_000))  # larger than the bound alone: kept, everything older goes
    assert [e.seq for e in journal] == [21]
    journal.clear()
    assert journal.bytes == 0 and len(journal) == 0


async def test_unauthenticated_large_bodies_keep_only_a_capped_prefix(start: Start) -> None:
    h = await start({"server": {"journal_bytes": 400_000, "journal_body_bytes": 1024}})
    big = "z" * 300_000
    for i in range(10):
        body = {"username": "m", "agentId": "nobody", "pad": big, "i": i}
        reply = await h.amb.call("/balance", body)
        assert reply.json["status"]["code"] == 998
        reply = await h.fizzy.call("/wallet/balance", {"playerId": "p", "pad": big}, private_key="wrong")
        assert reply.status == 401
    journal = h.sim.journal
    assert len(journal) == 20 and journal.bytes <= 400_000
    for e in journal:
        assert e.op is None or e.op.request is None  # nothing decoded is kept from an unauthenticated caller
        assert e.received is not None and len(e.received["body"]) <= 1024 and e.received["truncated"]
        assert e.received["body_bytes"] > 300_000


async def test_authenticated_large_bodies_are_bounded_by_bytes(start: Start) -> None:
    h = await start({"server": {"journal_bytes": 1_000_000}})
    for i in range(12):
        reply = await h.amb.call("/balance", {"username": "m", "agentId": "demo", "pad": "y" * 200_000, "i": i})
        assert reply.json["status"]["code"] == 0
    assert h.sim.journal.bytes <= 1_000_000 and len(h.sim.journal) < 12
    status, entries = await h.admin("GET", "/_sim/journal")
    assert status == 200 and entries[-1]["request"]["i"] == 11


async def test_refused_requests_keep_what_arrived_with_secrets_redacted(xp: Harness) -> None:
    h = xp
    prepared = h.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = "ab" * 32
    prepared.headers["Authorization"] = "Bearer some.secret.token"
    assert (await h.xpro.send(prepared)).json["code"] == 83
    _, entries = await h.admin("GET", "/_sim/journal?limit=1")
    received = entries[0]["received"]
    assert received["method"] == "POST" and received["path"] == "/v2/members/balance"
    assert received["body"] == prepared.body.decode()
    headers = {k.lower(): v for k, v in received["headers"].items()}
    assert headers["x-agentid"] == "demo" and headers["x-nonce"] == prepared.headers["x-nonce"]
    assert "some.secret.token" not in jsonio.dumps(entries) and headers["authorization"].startswith("Bearer <")
    assert ("ab" * 32) not in jsonio.dumps(entries)
    ok = await h.xpro.balance("player001")
    assert ok.json["code"] == 0
    _, entries = await h.admin("GET", "/_sim/journal?limit=1")
    assert entries[0]["received"] is None  # accepted requests keep the decoded request only


async def test_xpro_signature_refusal_shows_what_was_computed(xp: Harness) -> None:
    h = xp
    prepared = h.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = "00" * 32
    reply = await h.xpro.send(prepared)
    assert reply.json["code"] == 83
    cipher = jsonio.loads(prepared.body)["cipherText"]
    hd = prepared.headers
    canonical = f"demo|{hd['x-timestamp']}|{hd['x-nonce']}|{cipher}"
    expected = xpro_signature("demo", hd["x-timestamp"], hd["x-nonce"], cipher)
    detail = reply.headers["X-Sim-Detail"]
    assert f"demo|{hd['x-timestamp']}|{hd['x-nonce']}|" in detail and expected[:16] in detail
    _, entries = await h.admin("GET", "/_sim/journal?limit=1")
    diag = entries[0]["diagnostics"]
    assert diag["canonical"] == canonical and diag["expected_signature"] == expected
    assert diag["body_md5"] == hashlib.md5(prepared.body).hexdigest().upper()


async def test_fizzy_signature_refusal_shows_the_string_to_sign_for_demo_brands(start: Start) -> None:
    h = await start({"fizzy": {"brands": [{"public_key": "real", "private_key": "real-secret"}]}})
    body = {"playerId": "p-1", "sessionId": "s", "currency": "EUR"}
    reply = await h.fizzy.call("/wallet/balance", body, url="http://elsewhere/wallet/balance")
    assert reply.status == 401
    raw = jsonio.dumpb(body)
    url = h.url + "/wallet/balance"
    expected = fizzy_signature("demo-private-key", "POST", url, raw)
    assert f"POST\\n{url}\\n{hashlib.md5(raw).hexdigest().upper()}" in reply.headers["X-Sim-Detail"]
    assert expected[:16] in reply.headers["X-Sim-Detail"]
    _, entries = await h.admin("GET", "/_sim/journal?limit=1")
    diag = entries[0]["diagnostics"]
    assert diag["canonical"] == fizzy_string_to_sign("POST", url, raw) and diag["expected_signature"] == expected

    secret = h.fizzy.prepare("/wallet/balance", body, private_key="nope")
    secret.headers["Public-Key"] = "real"
    reply = await h.fizzy.send(secret)
    assert reply.status == 401 and "expected" not in reply.headers["X-Sim-Detail"]
    _, entries = await h.admin("GET", "/_sim/journal?limit=1")
    assert "expected_signature" not in entries[0]["diagnostics"]  # a real key's signature is an oracle
    assert "real-secret" not in jsonio.dumps(entries)


async def test_debug_signatures_shows_expected_signatures_of_real_keys(start: Start) -> None:
    h = await start(
        {"server": {"debug_signatures": True}, "fizzy": {"brands": [{"public_key": "real", "private_key": "k2"}]}}
    )
    body = {"playerId": "p-1", "sessionId": "s", "currency": "EUR"}
    prepared = h.fizzy.prepare("/wallet/balance", body, private_key="nope")
    prepared.headers["Public-Key"] = "real"
    reply = await h.fizzy.send(prepared)
    expected = fizzy_signature("k2", "POST", h.url + "/wallet/balance", prepared.body)
    assert reply.status == 401 and expected[:16] in reply.headers["X-Sim-Detail"]
