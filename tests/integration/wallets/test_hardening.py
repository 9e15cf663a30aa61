"""Regression tests of issue 9's input and availability defects (items 5 and 7-13), each through HTTP
where a user meets it, plus the siblings found beside them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator import jsonio
from simulator.dialects.client import Prepared
from simulator.dialects.crypto import fizzy_signature
from simulator.dialects.xpro import NonceCache
from simulator.errors import SourceError
from simulator.scenarios import loader
from simulator.server.app import DIALECTS_KEY
from tests import rawhttp
from tests.conftest import Harness, Start


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


def with_extra(fields: dict[str, Any], extra: str) -> bytes:
    """``fields`` plus ``"extra": <raw JSON text>`` (deeper than our own encoder would write)."""
    return jsonio.dumpb(fields)[:-1] + b',"extra":' + extra.encode() + b"}"


async def journal_ok(h: Harness) -> list[dict[str, Any]]:
    """The journal and verify answer (never 500) whatever was recorded."""
    status, entries = await h.admin("GET", "/_sim/journal")
    assert status == 200, entries
    status, answer = await h.admin("POST", "/_sim/journal/verify", {"match": {}, "min": 0})
    assert status == 200, answer
    assert isinstance(entries, list)
    return entries


# item 5: the XPro nonce store


def test_nonce_store_is_per_agent_and_refuses_rather_than_forgets() -> None:
    cache = NonceCache(window=300, cap=3)
    assert cache.add("a", "n1", 1000.0) == "ok" and cache.add("a", "n1", 1001.0) == "replay"
    assert cache.add("a", "n2", 1000.0) == "ok" and cache.add("a", "n3", 1000.0) == "ok"
    assert cache.add("a", "n4", 1002.0) == "full"  # n1..n3 are still inside the window: never forget them
    assert cache.add("a", "n1", 1002.0) == "replay"
    assert cache.add("b", "n1", 1002.0) == "ok"  # another agent has its own bucket
    assert cache.add("a", "n4", 1000.0 + 601) == "ok"  # n1..n3 expired: they left from the left
    assert cache.add("a", "n1", 1000.0 + 601) == "ok"
    assert len(cache) == 3


def test_nonce_eviction_is_constant_time_after_many_expiries() -> None:
    cache = NonceCache(window=1, cap=1_000_000)
    for i in range(50_000):
        assert cache.add("a", f"{i:032x}", float(i)) == "ok"  # each insert expires the ones before
    assert len(cache) <= 3


async def test_unknown_agents_store_no_nonce(h: Harness) -> None:
    for i in range(20):
        reply = await h.xpro.call("/v2/members/balance", {"username": "u"}, agent_id="x" * 8000 + str(i))
        assert reply.json["code"] == 10
    assert len(h.runner.app[DIALECTS_KEY]["xpro"].nonces) == 0  # type: ignore[attr-defined]


async def test_a_full_nonce_bucket_refuses_and_a_replay_stays_refused(start: Start) -> None:
    h = await start({"xpro": {"max_nonces": 3}})
    nonce = "0123456789abcdef0123456789abcdef"
    auth = {"agentId": "demo", "secret": "demo-secret"}
    assert (await h.xpro.call("/v2/auth", auth, nonce=nonce)).json["code"] == 0
    for _ in range(2):
        assert (await h.xpro.call("/v2/auth", auth)).json["code"] == 0
    full = await h.xpro.call("/v2/auth", auth)
    assert full.json["code"] == 83 and "nonce" in full.headers["X-Sim-Detail"]
    for i in range(50):  # junk from anyone who is not the agent cannot push the real nonce out
        await h.xpro.call("/v2/auth", auth, agent_id=f"junk{i}")
    replay = await h.xpro.call("/v2/auth", auth, nonce=nonce)
    assert replay.json["code"] == 83 and "replay" in replay.headers["X-Sim-Detail"]


# item 7: the control API cannot block the loop


async def test_verify_refuses_huge_counts_without_converting_them(h: Harness) -> None:
    for value in ("1e1000000", "-1", "1.5", "1e10"):
        status, answer = await h.admin("POST", "/_sim/journal/verify", text=f'{{"match": {{}}, "count": {value}}}')
        assert status == 400, (value, answer)
        assert "count" in answer["error"]


BOMB = """\
name: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


async def test_yaml_alias_bomb_and_deep_nesting_are_400_naming_the_problem(h: Harness) -> None:
    status, answer = await h.admin("PUT", "/_sim/scenario", text=BOMB)
    assert status == 400 and "alias" in answer["error"], answer
    deep = "name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    status, answer = await h.admin("PUT", "/_sim/scenario", text=deep)
    assert status == 400 and "nest" in answer["error"], answer
    recursive = "name: r\nx: &x [*x]\n"
    status, answer = await h.admin("PUT", "/_sim/scenario", text=recursive)
    assert status == 400 and "alias" in answer["error"], answer
    assert h.sim.scenario.name != "bomb"


def test_alias_bomb_in_a_file_is_a_load_error_with_a_line(tmp_path: Any) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    with pytest.raises(SourceError) as caught:
        loader.read(str(path))
    assert f"{path}:" in str(caught.value) and "alias" in str(caught.value)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\nrules:\n  - " + "{a: " * 500 + "1" + "}" * 500 + "\n")
    with pytest.raises(SourceError) as caught:
        loader.read(str(deep))
    assert f"{deep}:3:" in str(caught.value) and "nest" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("name: x\nseed: 1" + "0" * 5000 + "\n", 2, "integer of 5001"),
        ("name: x\nrules:\n  - match: {nth: 1" + "0" * 5000 + "}\n    delay: 1ms\n", 3, "integer"),
        ("name: x\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [1]\n" for i in range(99)), 33, "nest"),
    ],
)
def test_long_integers_and_alias_chains_are_load_errors(text: str, line: int, problem: str) -> None:
    with pytest.raises(SourceError, match=rf"\(t\):{line}: .*{problem}"):
        loader.parse(text, "(t)")


async def test_amounts_past_the_decimal_exponent_are_bad_requests(xp: Harness) -> None:
    """abs() of 1e999999999 raises decimal.Overflow: it must be a bad request, not a 500."""
    huge = '"amount":1e999999999,'

    def swollen(fields: dict[str, Any]) -> str:
        return jsonio.dumps(fields).replace('"amount":1,', huge)

    f = await xp.fizzy.call("/wallet/withdraw", swollen(xp.fizzy.money("p-1", "1", txn="w1")))
    assert f.status == 400 and f.json["code"] == "ERROR_BAD_REQUEST", f.body
    x = await xp.xpro.call("/v2/members/transaction", swollen({"username": "player001", "amount": 1, "transId": "t"}))
    assert x.json["code"] == 11, x.body
    a = await xp.amb.call("/bet", swollen(xp.amb.fields("member001", "R1", 1, txn="b1")))
    assert a.json["status"]["code"] == 997, a.body
    status, answer = await xp.admin("PUT", "/_sim/players/fizzy/p-2", text='{"balance": 1e999999999}')
    assert status == 400, answer


def test_normal_aliases_still_load() -> None:
    text = "name: ok\nrules:\n  - &r {match: {dialect: xpro}, delay: 1ms}\n  - *r\n"
    assert len(loader.parse(text, "(t)").rules) == 2


async def test_config_file_alias_bomb_is_refused(tmp_path: Any) -> None:
    from simulator import config

    path = tmp_path / "cfg.yaml"
    path.write_text(BOMB.replace("name: bomb\n", ""))
    with pytest.raises(SourceError, match="alias"):
        config.load(str(path))


# items 8, 9: deep nesting and unserialisable values


@pytest.mark.parametrize("depth", [300, 900, 5000])
async def test_deep_nesting_is_each_dialects_bad_request_and_the_journal_answers(xp: Harness, depth: int) -> None:
    h = xp
    x = await h.xpro.call("/v2/members/balance", with_extra({"username": "player001"}, nested(depth)))
    assert x.json["code"] == 11, x.body
    f = await h.fizzy.call("/wallet/withdraw", with_extra(h.fizzy.money("p-1", "1", txn="w1"), nested(depth)))
    assert f.status == 400 and f.json["code"] == "ERROR_BAD_REQUEST", f.body
    a = await h.amb.call("/bet", with_extra(h.amb.fields("member001", "R1", 1, txn="b1"), nested(depth)))
    assert a.json["status"]["code"] == 997, a.body
    entries = await journal_ok(h)
    assert all("nest" in (e["detail"] or "") for e in entries[-3:])


async def test_non_utf8_header_bytes_answer_each_protocols_code(start: Start) -> None:
    h = await start(admin_token="admin-token-1")
    xpro = h.xpro.prepare("/v2/auth", {"agentId": "demo", "secret": "demo-secret"})
    headers: dict[str, bytes | str] = dict(xpro.headers)
    headers["x-agentid"] = b"demo\xff"
    status, body = await rawhttp.send(h.url, "POST", "/v2/auth", headers, xpro.body)
    assert status == 200 and body["code"] == 83, body
    fizzy = h.fizzy.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    headers = {**fizzy.headers, "Host": b"127.0.0.1\xff"}
    status, body = await rawhttp.send(h.url, "POST", "/wallet/balance", headers, fizzy.body)
    assert status == 401 and body["code"] == "ERROR_INVALID_SIGNATURE", body
    headers = {**fizzy.headers, "Public-Key": b"demo-public-key\xff"}
    status, body = await rawhttp.send(h.url, "POST", "/wallet/balance", headers, fizzy.body)
    assert status == 401 and body["code"] == "ERROR_INVALID_SIGNATURE", body
    status, body = await rawhttp.send(h.url, "GET", "/_sim/journal", {"Authorization": b"Bearer \xff"})
    assert status == 401 and "admin token" in body["error"], body
    amb: dict[str, bytes | str] = {"X-Forwarded-For": b"10.0.0.1\xff", "Content-Type": "application/json"}
    status, body = await rawhttp.send(
        h.url, "POST", "/balance", amb, jsonio.dumpb({"username": "m", "agentId": "demo"})
    )
    assert status == 200 and body["status"]["code"] == 0, body
    async with h.http.get(h.url + "/_sim/journal", headers={"Authorization": "Bearer admin-token-1"}) as response:
        assert response.status == 200
        entries = await response.json()
    assert entries[0]["response"]["code"] == 83 and "x-agentid" in entries[0]["detail"]


# item 11


@pytest.mark.parametrize("limit", ["²", "1" * 5000, "-1", "1.5", "٣"])
async def test_bad_limits_are_400(h: Harness, limit: str) -> None:
    for path in ("/_sim/journal", "/_sim/transactions"):
        status, answer = await h.admin("GET", f"{path}?limit={limit}")
        assert status == 400 and "limit" in answer["error"], answer


# item 12


def test_rule_names_with_control_characters_are_refused_at_load() -> None:
    text = 'name: n\nrules:\n  - name: "evil\\nX-Injected: 1"\n    match: {dialect: xpro}\n    delay: 1ms\n'
    with pytest.raises(SourceError, match=r"\(t\):3: rules\[0\]\.name"):
        loader.parse(text, "(t)")


async def test_a_non_ascii_rule_name_reaches_the_client_escaped(start: Start) -> None:
    scenario = "name: n\nrules:\n  - name: ставка 10€\n    match: {dialect: ambslot}\n    respond: {code: 800}\n"
    h = await start(scenario=scenario)
    reply = await h.amb.bet("member001", "R1", 1)
    assert reply.json["status"]["code"] == 800
    assert reply.headers["X-Sim-Rule"].isascii() and "%" in reply.headers["X-Sim-Rule"]
    entries = await journal_ok(h)
    assert entries[-1]["rule"] == "ставка 10€"


# item 13


async def test_bearer_scheme_is_case_insensitive(start: Start) -> None:
    h = await start(admin_token="admin-token-1")
    token = await h.xpro.authenticate()
    prepared = h.xpro.prepare("/v2/members", {"username": "u1"})
    prepared.headers["Authorization"] = f"bearer {token}"
    assert (await h.xpro.send(prepared)).json["code"] == 0
    prepared = h.xpro.prepare("/v2/members/balance", {"username": "u1"})
    prepared.headers["Authorization"] = f"BEARER  {token}"
    assert (await h.xpro.send(prepared)).json["code"] == 0
    for scheme in ("bearer", "BEARER", "Bearer"):
        async with h.http.get(h.url + "/_sim/players", headers={"Authorization": f"{scheme} admin-token-1"}) as r:
            assert r.status == 200
    async with h.http.get(h.url + "/_sim/players", headers={"Authorization": "Basic admin-token-1"}) as r:
        assert r.status == 401


# a sibling of item 10: the Fizzy signature over a URL whose bytes are not UTF-8


async def test_fizzy_signature_detail_is_header_safe(h: Harness) -> None:
    body = b'{"playerId":"p-1","sessionId":"s","currency":"EUR"}'
    headers = {"Public-Key": "demo-public-key", "Signature": fizzy_signature("demo-private-key", "POST", "x", body)}
    async with h.http.post(h.url + "/wallet/balance?q=%FF", data=body, headers=headers) as response:
        assert response.status == 401
        assert response.headers["X-Sim-Detail"].isascii()
    await journal_ok(h)


async def test_many_concurrent_hostile_requests_leave_a_readable_journal(xp: Harness) -> None:
    h = xp
    calls = [h.xpro.call("/v2/members/balance", with_extra({"username": "player001"}, nested(400))) for _ in range(5)]
    lone = b'{"username": "m", "agentId": "demo", "e": "\\udc80x"}'
    calls += [h.amb.send(Prepared("POST", h.url + "/balance", {}, lone)) for _ in range(5)]
    await asyncio.gather(*calls)
    assert len(await journal_ok(h)) >= 10
