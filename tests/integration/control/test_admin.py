"""The /_sim control API: every call of ADMIN.md, access control, and the bounded journal."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from simulator import config, jsonio
from simulator.server.app import create_app
from simulator.service import Simulator
from tests.conftest import Harness, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.both_stores]  # each test on memory and on a real Redis

SCENARIO = """\
name: admin-test
players:
  - {dialect: xpro, username: player001, balance: "100.00"}
  - {dialect: fizzy, playerId: p-1, balance: "50"}
  - {dialect: ambslot, username: member001, balance: 10}
rules:
  - name: once
    match: {dialect: ambslot, operation: bet}
    respond: {error: timeout}
    times: 1
"""


@pytest.fixture
async def a(start: Start) -> Harness:
    h = await start(scenario=SCENARIO)
    await h.xpro.authenticate()
    return h


async def test_health(a: Harness) -> None:
    status, body = await a.admin("GET", "/_sim/health")
    assert status == 200 and body["status"] == "ok" and body["dialects"] == ["xpro", "fizzy", "ambslot"]
    assert body["version"] and body["scenario"] == "admin-test"


async def test_reset_restores_players_empties_journal_and_rule_counters(a: Harness) -> None:
    await a.xpro.transfer("player001", -30, "W1")
    assert (await a.amb.bet("member001", "R1", 1)).json["status"]["code"] == 1601  # the rule's only hit
    assert (await a.amb.bet("member001", "R2", 1)).json["status"]["code"] == 0
    await a.fizzy.balance("p-new")  # auto-created
    status, body = await a.admin("POST", "/_sim/reset")
    assert status == 200 and body["ok"] is True
    assert await a.find_player("fizzy", "p-new", "demo-public-key") is None
    assert (await a.xpro.balance("player001")).json["data"]["balance"] == 100
    assert all(t["kind"] == "adjust" for t in await a.transactions())
    _, journal = await a.admin("GET", "/_sim/journal")
    assert [e["operation"] for e in journal] == ["balance"]  # only the call just made
    assert (await a.amb.bet("member001", "R1", 1)).json["status"]["code"] == 1601  # counters back at zero


async def test_players_list_and_filters(a: Harness) -> None:
    status, players = await a.admin("GET", "/_sim/players")
    assert status == 200 and {p["player"] for p in players} == {"player001", "p-1", "member001"}
    _, fizzy = await a.admin("GET", "/_sim/players?dialect=fizzy")
    assert [p["player"] for p in fizzy] == ["p-1"] and fizzy[0]["balance"] == 50 and fizzy[0]["currency"] == "EUR"
    _, found = await a.admin("GET", "/_sim/players?q=MEMBER")
    assert [p["player"] for p in found] == ["member001"]
    assert set(found[0]) >= {"locked", "blocked", "disabled", "session_expired", "bet_limit", "tenant"}


async def test_put_creates_and_updates_players(a: Harness) -> None:
    status, created = await a.admin("PUT", "/_sim/players/fizzy/vip", {"balance": "1234.56", "currency": "USD"})
    assert status == 201 and created["balance"] == Decimal("1234.56") and created["currency"] == "USD"
    assert (await a.fizzy.balance("vip", currency="USD")).json["balance"] == Decimal("1234.56")
    status, updated = await a.admin("PUT", "/_sim/players/fizzy/vip", {"balance": 10})
    assert status == 200 and updated["balance"] == 10
    assert (await a.transactions())[0]["kind"] == "adjust"  # the latest
    _, report = await a.admin("GET", "/_sim/invariants")
    assert report["ok"] is True


async def test_flags_take_effect_on_the_wire(a: Harness) -> None:
    await a.admin("PUT", "/_sim/players/xpro/player001", {"locked": True})
    assert (await a.xpro.transfer("player001", 1, "T1")).json["code"] == 20
    await a.admin("PUT", "/_sim/players/xpro/player001", {"locked": False, "disabled": True})
    assert (await a.xpro.balance("player001")).json["code"] == 19
    await a.admin("PUT", "/_sim/players/fizzy/p-1", {"bet_limit": "5"})
    assert (await a.fizzy.withdraw("p-1", 6)).json["code"] == "ERROR_TRANSACTION_LIMIT_EXCEEDED"
    await a.admin("PUT", "/_sim/players/fizzy/p-1", {"bet_limit": None, "blocked": True})
    assert (await a.fizzy.withdraw("p-1", 6)).json["code"] == "ERROR_BAD_REQUEST_PLAYER_BLOCKED"
    await a.admin("PUT", "/_sim/players/fizzy/p-1", {"blocked": False, "session_expired": True})
    assert (await a.fizzy.withdraw("p-1", 6)).json["code"] == "ERROR_SESSION_EXPIRED"
    await a.admin("PUT", "/_sim/players/ambslot/member001", {"locked": True})
    assert (await a.amb.payout("member001", "R9", 1)).json["status"]["code"] == 0


async def test_put_names_the_tenant(start: Start) -> None:
    h = await start({"ambslot": {"agents": [{"id": "second", "currency": "USD"}]}})
    status, body = await h.admin("PUT", "/_sim/players/ambslot/m1", {"agent": "second", "balance": 3})
    assert status == 201 and body["tenant"] == "second" and body["currency"] == "USD"
    status, body = await h.admin("GET", "/_sim/players/ambslot/m1?agent=second")
    assert status == 200 and body["balance"] == 3


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/_sim/players/casino/x", {}, 404, "unknown dialect"),
        ("/_sim/players/xpro/x", {"balanse": 1}, 400, "unknown field"),
        ("/_sim/players/xpro/x", {"balance": "lots"}, 400, "not an amount"),
        ("/_sim/players/xpro/x", {"balance": -1}, 400, "must not be negative"),
        ("/_sim/players/xpro/x", {"balance": None}, 400, "balance must be a number"),
        ("/_sim/players/xpro/x", {"locked": "yes"}, 400, "locked must be true or false"),
        ("/_sim/players/xpro/x", {"agent": "nobody"}, 400, "not a configured xpro tenant"),
        ("/_sim/players/xpro/x", {"sessions": "s"}, 400, "sessions must be a list"),
    ],
)
async def test_put_refuses_bad_input(a: Harness, path: str, body: object, status: int, text: str) -> None:
    got, answer = await a.admin("PUT", path, body)
    assert got == status and text in answer["error"]
    assert await a.find_player("xpro", "x", "demo") is None


async def test_put_refuses_broken_json(a: Harness) -> None:
    status, answer = await a.admin("PUT", "/_sim/players/xpro/x", text="{broken")
    assert status == 400 and "not JSON" in answer["error"]


async def test_one_player_with_its_transactions(a: Harness) -> None:
    await a.xpro.transfer("player001", 5, "D1")
    await a.xpro.transfer("player001", -2, "W1")
    status, body = await a.admin("GET", "/_sim/players/xpro/player001")
    assert status == 200 and body["balance"] == 103
    assert [t["transaction"] for t in body["transactions"]] == ["W1", "D1"]  # newest first
    assert body["transactions"][0]["amount"] == -2
    assert (await a.admin("GET", "/_sim/players/xpro/ghost"))[0] == 404


async def test_transactions_newest_first_with_filters(a: Harness) -> None:
    await a.fizzy.withdraw("p-1", 5, txn="w1")
    await a.fizzy.withdraw("p-1", 5, txn="w2", round_id="r2")
    await a.fizzy.rollback("p-1", "w1", txn="rb1")
    await a.xpro.transfer("player001", 5, "D1")
    _, all_txns = await a.admin("GET", "/_sim/transactions")
    assert [t["transaction"] for t in all_txns] == ["D1", "rb1", "w2", "w1"]
    _, fizzy = await a.admin("GET", "/_sim/transactions?dialect=fizzy&status=rolled_back")
    assert [t["transaction"] for t in fizzy] == ["w1"] and fizzy[0]["reversed_by"] == "rb1"
    _, one = await a.admin("GET", "/_sim/transactions?player=player001&limit=1")
    assert [t["transaction"] for t in one] == ["D1"]
    assert (await a.admin("GET", "/_sim/transactions?limit=x"))[0] == 400


async def test_journal_records_decoded_requests_rules_and_responses(a: Harness) -> None:
    await a.xpro.transfer("player001", "12.5", "D1")
    await a.amb.bet("member001", "R1", 1)
    _, entries = await a.admin("GET", "/_sim/journal?dialect=xpro&operation=deposit")
    entry = entries[-1]
    assert entry["request"] == {"username": "player001", "amount": Decimal("12.5"), "transId": "D1"}  # decrypted
    assert (
        entry["player"] == "player001"
        and entry["transaction"] == "D1"
        and entry["endpoint"] == "/v2/members/transaction"
    )
    assert entry["response"]["status"] == 200 and entry["response"]["body"]["data"]["balance"] == Decimal("112.5")
    assert entry["rule"] is None and entry["ms"] >= 0 and entry["time"].endswith("+00:00")
    _, ruled = await a.admin("GET", "/_sim/journal?rule=once")
    assert len(ruled) == 1 and ruled[0]["response"]["body"]["status"]["code"] == 1601
    _, limited = await a.admin("GET", "/_sim/journal?limit=1")
    assert len(limited) == 1 and limited[0]["dialect"] == "ambslot"
    _, by_player = await a.admin("GET", "/_sim/journal?player=member001")
    assert [e["operation"] for e in by_player] == ["bet"]


async def test_journal_records_refusals_too(a: Harness) -> None:
    prepared = a.xpro.prepare("/v2/members/balance", {"username": "player001"})
    prepared.headers["x-signature"] = "0" * 64
    await a.xpro.send(prepared)
    _, entries = await a.admin("GET", "/_sim/journal?dialect=xpro&operation=balance")
    assert entries[-1]["response"]["body"]["code"] == 83 and "x-signature" in entries[-1]["detail"]


async def test_journal_verify(a: Harness) -> None:
    for n in range(3):
        await a.xpro.transfer("player001", 1, f"D{n}")
    ok = await a.admin(
        "POST", "/_sim/journal/verify", {"match": {"dialect": "xpro", "operation": "deposit"}, "count": 3}
    )
    assert ok == (200, {"ok": True, "found": 3})
    assert (await a.admin("POST", "/_sim/journal/verify", {"match": {"operation": "deposit"}, "min": 2, "max": 3}))[
        0
    ] == 200
    status, body = await a.admin("POST", "/_sim/journal/verify", {"match": {"transaction": "^D[12]$"}, "count": 1})
    assert status == 409 and body["found"] == 2 and len(body["closest"]) == 2
    status, body = await a.admin("POST", "/_sim/journal/verify", {"match": {"operation": "cashout"}, "count": 1})
    assert status == 409 and body["found"] == 0 and body["closest"]  # the nearest recorded requests
    status, body = await a.admin("POST", "/_sim/journal/verify", {"match": {"amount": {"gte": 1}}, "count": 3})
    assert status == 200


async def test_a_failed_verify_says_which_key_differed_without_secrets(a: Harness) -> None:
    await a.xpro.transfer("player001", 5, "T-9")
    want = {
        "dialect": "xpro",
        "operation": "withdraw",
        "player": "player001",
        "transaction": "^W-",
        "amount": {"gt": 10},
    }
    status, body = await a.admin("POST", "/_sim/journal/verify", {"match": want, "count": 1})
    assert status == 409 and body["found"] == 0
    first = body["misses"][0]  # the transfer misses on the fewest keys
    assert first.startswith("#") and " xpro /v2/members/transaction deposit player001 T-9 -> 0: " in first
    assert "operation: expected 'withdraw', got 'deposit'" in first
    assert "transaction: expected /^W-/, got 'T-9'" in first
    assert "amount: expected gt 10, got 5" in first
    assert "player:" not in first and "dialect:" not in first  # the keys that held are not listed
    text = "\n".join(body["misses"])
    assert "demo-secret" not in text and "Bearer" not in text and str(a.xpro.token) not in text  # auth was recorded
    assert any("/v2/auth auth" in line for line in body["misses"])


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"match": {"nth": 1}, "count": 1}, "make no sense"),
        ({"match": {"operation": "withdrew"}, "count": 1}, "invalid match"),
        ({"match": {"operation": "deposit"}}, "give count"),
        ({"match": {}, "count": -1}, "whole number"),
        ({"match": "deposit", "count": 1}, "match must be an object"),
    ],
)
async def test_journal_verify_refuses_bad_requests(a: Harness, body: object, text: str) -> None:
    status, answer = await a.admin("POST", "/_sim/journal/verify", body)
    assert status == 400 and text in answer["error"]


async def test_delete_journal(a: Harness) -> None:
    await a.xpro.balance("player001")
    assert (await a.admin("DELETE", "/_sim/journal"))[0] == 200
    assert (await a.admin("GET", "/_sim/journal"))[1] == []


async def test_journal_is_a_ring_buffer(start: Start) -> None:
    h = await start({"server": {"journal_size": 25}})
    for n in range(100):
        await h.amb.bet("member001", f"R{n}", 1, txn=f"T{n}")
    _, entries = await h.admin("GET", "/_sim/journal")
    assert len(entries) == 25 and entries[0]["transaction"] == "T75" and entries[-1]["transaction"] == "T99"


async def test_scenario_read_and_replace(a: Harness) -> None:
    status, text = await a.admin("GET", "/_sim/scenario")
    assert status == 200 and "name: admin-test" in text
    new = (
        "name: replaced\nplayers:\n  - {dialect: ambslot, username: fresh, balance: 7}\n"
        "rules:\n  - {match: {dialect: ambslot, operation: balance}, respond: {code: 999}}\n"
    )
    status, body = await a.admin("PUT", "/_sim/scenario", text=new)
    assert status == 200 and body["name"] == "replaced" and body["rules"] == 1
    assert (await a.amb.balance("fresh")).json["status"]["code"] == 999
    assert (await a.player_view("ambslot", "fresh", "demo"))["balance"] == 7
    assert (await a.admin("GET", "/_sim/scenario"))[1] == new


async def test_invalid_scenario_is_refused_and_the_old_one_stays(a: Harness) -> None:
    status, body = await a.admin("PUT", "/_sim/scenario", text="name: bad\nrules:\n  - delay: soon\n")
    assert status == 400
    assert body["problems"] == [
        "(PUT /_sim/scenario):3: rules[0].delay: 'soon' is not valid: a duration such as 250ms or 2s."
    ]
    assert (await a.admin("GET", "/_sim/health"))[1]["scenario"] == "admin-test"


async def test_invariants_report_offenders(a: Harness) -> None:
    assert (await a.admin("GET", "/_sim/invariants"))[1]["ok"] is True
    if a.sim.store.kind == "memory":
        player = a.sim.ledger.player("xpro", "demo", "player001")
        assert player is not None
        player.balance += 1
    else:  # damage the shared store itself: the balance moves without a transaction
        client: Any = a.sim.store.redis  # type: ignore[attr-defined]
        tag = "{" + a.sim.store.keys.prefix + ":xpro:demo}"  # type: ignore[attr-defined]
        [key] = [k async for k in client.scan_iter(match="*:p:player001") if k.startswith(tag)]
        version, _, text = (await client.get(key)).partition("|")
        data = jsonio.loads(text)
        data["balance"] = str(Decimal(data["balance"]) + 1)
        await client.set(key, f"{version}|{jsonio.dumps(data)}")
    status, body = await a.admin("GET", "/_sim/invariants")
    assert status == 409 and body["problems"][0]["player"] == ["xpro", "demo", "player001"]


async def test_unknown_control_calls_are_404_json(a: Harness) -> None:
    status, body = await a.admin("GET", "/_sim/nope")
    assert status == 404 and "no control call" in body["error"]


async def test_admin_token(start: Start) -> None:
    h = await start(admin_token="t0ken-t0ken")
    assert (await h.admin("GET", "/_sim/health"))[0] == 200
    assert (await h.admin("GET", "/_sim/players"))[0] == 401
    assert (await h.admin("POST", "/_sim/reset"))[0] == 401
    async with h.http.get(h.url + "/_sim/players", headers={"Authorization": "Bearer t0ken-t0ken"}) as response:
        assert response.status == 200
    assert (await h.amb.balance("member001")).status == 200  # dialects need no admin token


async def test_adjustments_never_share_a_namespace_with_client_ids(a: Harness) -> None:
    await a.admin("PUT", "/_sim/players/xpro/player001", {"balance": 50})
    await a.admin("PUT", "/_sim/players/xpro/player001", {"balance": 60})
    _, txns = await a.admin("GET", "/_sim/transactions?player=player001")
    adjustment = txns[0]
    assert adjustment["kind"] == "adjust" and adjustment["amount"] == 10
    # the id an adjustment shows is not a client id: XPro cannot see it, and may use it for itself
    assert (await a.xpro.check("player001", adjustment["transaction"])).json["code"] == 4
    for trans_id in {adjustment["transaction"], "admin-1", "admin-2", "admin-3"}:
        assert (await a.xpro.transfer("player001", 1, trans_id)).json["code"] == 0
    status, report = await a.admin("GET", "/_sim/invariants")
    assert status == 200 and report["ok"] is True, report
    assert (await a.xpro.balance("player001")).json["data"]["balance"] == 60 + len(
        {adjustment["transaction"], "admin-1", "admin-2", "admin-3"}
    )


async def test_tombstones_are_bounded_by_the_setting(start: Start) -> None:
    h = await start({"server": {"max_tombstones": 1}})
    for round_id in ("R1", "R2"):
        assert (await h.amb.cancel("member001", round_id)).json["status"]["code"] == 0
    status, stones = await h.admin("GET", "/_sim/tombstones")
    assert status == 200 and (stones["count"], stones["cap"], stones["forgotten"]) == (1, 1, 1)
    assert [s["round"] for s in stones["tombstones"]] == ["R2"]
    assert (await h.amb.bet("member001", "R2", 5)).json["status"]["code"] == 997
    assert (await h.amb.bet("member001", "R1", 5)).json["status"]["code"] == 0  # forgotten: accepted again
    assert (await h.admin("GET", "/_sim/tombstones?limit=x"))[0] == 400
    assert (await h.admin("POST", "/_sim/reset"))[0] == 200
    assert (await h.admin("GET", "/_sim/tombstones"))[1]["count"] == 0


async def test_put_refuses_another_players_session_and_changes_nothing(a: Harness) -> None:
    assert (await a.fizzy.balance("p-1", session="s-1")).status == 200
    status, body = await a.admin("PUT", "/_sim/players/fizzy/p-1", {"balance": 7, "sessions": ["s-1"]})
    assert status == 200 and body["balance"] == 7  # its own session: fine
    status, body = await a.admin("PUT", "/_sim/players/fizzy/p-2", {"balance": 5, "sessions": ["s-1"]})
    assert status == 409 and "s-1" in body["error"] and "p-1" in body["error"]
    assert (await a.admin("GET", "/_sim/players/fizzy/p-2"))[0] == 404
    status, body = await a.admin("PUT", "/_sim/players/fizzy/p-1", {"balance": 9, "sessions": ["s-2", "s-1"]})
    assert status == 200
    await a.fizzy.balance("p-3", session="s-3")
    status, _ = await a.admin("PUT", "/_sim/players/fizzy/p-1", {"balance": 11, "sessions": ["s-4", "s-3"]})
    assert status == 409
    _, p1 = await a.admin("GET", "/_sim/players/fizzy/p-1")
    assert p1["balance"] == 9 and "s-4" not in p1["sessions"]  # the refused call changed nothing
    assert (await a.admin("GET", "/_sim/invariants"))[0] == 200


async def test_seeded_sessions_belong_to_their_player(start: Start) -> None:
    scenario = "name: s\nplayers:\n  - {dialect: fizzy, playerId: p-1, sessions: [seeded]}\n"
    h = await start(scenario=scenario)
    reply = await h.fizzy.balance("p-2", session="seeded")
    assert reply.status == 400 and reply.json["code"] == "ERROR_INVALID_SESSION"
    assert (await h.fizzy.balance("p-1", session="seeded")).status == 200


async def test_the_control_guard_costs_dialect_requests_nothing() -> None:
    """A middleware on the /_sim sub-app would make aiohttp run middleware machinery on every dialect
    request; the guard wraps each control handler instead (``_run_middlewares`` is what aiohttp checks)."""
    app = create_app(Simulator(config.load(None)), admin_token="secret-token")
    app.freeze()
    assert not app._run_middlewares


PLAYERS_ONLY = SCENARIO[: SCENARIO.index("rules:")]


async def test_players_are_bounded_and_a_full_ledger_refuses_new_ones_changing_nothing(start: Start) -> None:
    """Anyone who knows an AMBSlot agent id can name new players: the ledger keeps at most
    ``server.max_players`` and refuses the next one with the internal error, on the wire and in /_sim."""
    h = await start({"server": {"max_players": 4}}, scenario=PLAYERS_ONLY)  # three players from the scenario
    assert (await h.amb.balance("newcomer1")).json["status"]["code"] == 0  # the fourth: auto-created
    refused = await h.amb.balance("newcomer2")
    assert refused.json["status"]["code"] == 999
    assert "max_players" in refused.headers["X-Sim-Detail"]
    assert (await h.amb.bet("newcomer3", "R1", 1)).json["status"]["code"] == 999
    status, body = await h.admin("PUT", "/_sim/players/ambslot/newcomer4", {"balance": 5})
    assert status == 507 and "max_players" in body["error"]
    status, players = await h.admin("GET", "/_sim/players")
    assert status == 200 and len(players) == 4, players
    assert "newcomer1" in {p["player"] for p in players}, players
    status, body = await h.admin("PUT", "/_sim/players/ambslot/newcomer1", {"balance": 5})  # existing: fine
    assert status == 200 and body["balance"] == 5
    assert (await h.admin("GET", "/_sim/invariants"))[1]["ok"] is True
    assert (await h.admin("POST", "/_sim/reset"))[0] == 200  # back to the scenario's three: room again
    assert (await h.amb.balance("newcomer2")).json["status"]["code"] == 0


async def test_a_full_ledger_keeps_serving_and_refuses_a_dropped_id_as_a_duplicate(start: Start) -> None:
    """Retention, not refusal: past max_transactions the oldest rows go, and their ids stay refused."""
    h = await start({"server": {"max_transactions": 2}}, scenario=PLAYERS_ONLY)
    for n in range(1, 5):
        assert (await h.amb.bet("member001", f"R{n}", 1, txn=f"T{n}")).json["status"]["code"] == 0
    status, body = await h.admin("PUT", "/_sim/players/ambslot/member001", {"balance": 50})
    assert status == 200 and body["balance"] == 50
    for _ in range(200):  # the shared store drops the oldest rows in the background, within moments
        status, player = await h.admin("GET", "/_sim/players/ambslot/member001")
        if len(player["transactions"]) == 2:
            break
        await asyncio.sleep(0.01)
    assert status == 200 and player["balance"] == 50 and len(player["transactions"]) == 2
    retry = await h.amb.bet("member001", "R9", 1, txn="T1")
    assert retry.json["status"]["code"] == 900  # a duplicate: the dropped bet's id is still known
    assert (await h.admin("GET", "/_sim/players/ambslot/member001"))[1]["balance"] == 50
    assert (await h.admin("GET", "/_sim/invariants"))[1]["ok"] is True


async def test_a_rollback_of_a_dropped_withdraw_leaves_no_tombstone_and_its_retry_is_a_duplicate(
    start: Start,
) -> None:
    h = await start({"server": {"max_transactions": 1}})
    assert (await h.fizzy.withdraw("p-1", 10, txn="w1")).status == 200
    assert (await h.fizzy.withdraw("p-1", 10, txn="w2")).status == 200  # w1's row is dropped
    rollback = await h.fizzy.rollback("p-1", "w1", txn="rb1")
    assert rollback.json["code"] == "ERROR_ROLLBACK_TRANSACTION_NOT_FOUND"
    assert (await h.admin("GET", "/_sim/tombstones"))[1]["count"] == 0  # w1 existed: nothing is late
    again = await h.fizzy.withdraw("p-1", 10, txn="w1")
    assert again.json["code"] == "ERROR_TRANSACTION_DUPLICATE"
    assert Decimal(str((await h.fizzy.balance("p-1")).json["balance"])) == 980
