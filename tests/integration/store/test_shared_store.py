"""The Redis store against a real ``redis-server``: replicas sharing one wallet, real server processes racing
on one player, restarts, and Redis lost and back while serving."""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from simulator import config
from simulator.dialects.client import AmbslotClient
from simulator.store import parse as parse_store
from tests.conftest import Harness, RedisServer, Start
from tests.integration.cli.test_cli import Served, run, serve  # noqa: F401 (the fixture that starts serve processes)
from tests.integration.wallets import test_soak as soak

RACE_SCENARIO = """\
name: race
players:
  - {dialect: ambslot, username: racer, balance: 100}
rules:
  - {name: five-refusals, match: {dialect: ambslot, operation: balance}, respond: {error: insufficient_funds}, times: 5}
  - {name: every-third, match: {dialect: ambslot, operation: payout, nth: 3}, respond: {error: duplicate}}
"""


@pytest.fixture
def store() -> str:
    return "redis"


def processes(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[type[Served], Path]:
    """test_cli's ``serve`` fixture (server processes, always stopped) and the race scenario as a file."""
    scenario = tmp_path / "race.yaml"
    scenario.write_text(RACE_SCENARIO)
    return request.getfixturevalue("serve"), scenario


def fresh(server: RedisServer) -> str:
    return server.url(f"t{uuid.uuid4().hex[:12]}")


async def amb_balance(h: Harness, player: str) -> Decimal:
    reply = await h.amb.balance(player)
    assert reply.json["status"]["code"] == 0, reply.json
    return Decimal(str(reply.json["data"]["wallet"]["balance"]))


# replicas in one process (two simulators, one Redis)


async def test_a_rollback_on_one_replica_finds_the_withdraw_of_the_other(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    assert (await a.fizzy.withdraw("p-1", 10, txn="w1")).status == 200
    assert (await b.fizzy.rollback("p-1", "w1", txn="rb1")).status == 200
    assert Decimal(str((await a.fizzy.balance("p-1")).json["balance"])) == 1000
    # a replayed withdraw on the other replica is the same answer, not a second debit
    assert (await b.fizzy.withdraw("p-1", 10, txn="w1")).json == (await a.fizzy.withdraw("p-1", 10, txn="w1")).json
    for h in (a, b):
        status, body = await h.admin("GET", "/_sim/invariants")
        assert status == 200 and body["ok"] and body["transactions"] == 2


async def test_control_changes_reach_every_replica(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    status, _ = await a.admin("PUT", "/_sim/players/ambslot/ann", {"balance": "12.34", "locked": True})
    assert status == 201
    status, body = await b.admin("GET", "/_sim/players/ambslot/ann")
    assert status == 200 and body["balance"] == Decimal("12.34") and body["locked"] is True
    assert (await b.amb.bet("ann", "R1", 1)).json["status"]["code"] == 999  # locked, seen by b
    rule = {"name": "no-bets", "match": {"operation": "bet"}, "respond": {"error": "insufficient_funds"}}
    assert (await b.admin("POST", "/_sim/rules", rule))[0] == 201
    assert (await a.amb.bet("bob", "R1", 1)).json["status"]["code"] == 800
    assert (await a.admin("POST", "/_sim/reset"))[0] == 200
    status, body = await b.admin("GET", "/_sim/players?dialect=ambslot")
    assert status == 200 and body == []  # reset for every replica: ann is gone
    rules = (await b.admin("GET", "/_sim/rules"))[1]["rules"]
    assert [(r["name"], r["hits"]) for r in rules] == [("no-bets", 0)]  # kept, counters restarted


async def test_rule_counters_stay_with_their_rule_when_others_come_and_go(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    first = {"name": "first", "match": {"operation": "payout"}, "respond": {"error": "duplicate"}, "times": 1}
    second = {"name": "second", "match": {"operation": "bet"}, "respond": {"error": "insufficient_funds"}, "times": 3}
    for rule in (first, second):
        assert (await a.admin("POST", "/_sim/rules", rule))[0] == 201
    assert (await b.amb.bet("member001", "R1", 1)).json["status"]["code"] == 800
    assert (await a.admin("DELETE", "/_sim/rules/first"))[0] == 200
    codes = [(await h.amb.bet("member001", f"R{i}", 1)).json["status"]["code"] for i, h in enumerate((a, b, a))]
    assert codes == [800, 800, 0]  # two more refusals, then the rule is spent: 3 in all
    rules = (await b.admin("GET", "/_sim/rules"))[1]["rules"]
    assert [(r["name"], r["hits"], r["remaining"]) for r in rules] == [("second", 3, 0)]


async def test_a_soak_over_two_replicas_leaves_one_consistent_ledger(start: Start, redis_server: RedisServer) -> None:
    """test_soak's clients split over two replicas of one store, racing on the same players; then a third
    replica, built from the log alone, holds exactly what the clients were told, as the other two do."""
    url = fresh(redis_server)
    a, b = await start(store_url=url, scenario=soak.SCENARIO), await start(store_url=url)
    for h in (a, b):
        await h.xpro.authenticate()
    tally = soak.Tally()
    await asyncio.gather(*(soak.worker((a, b)[seed % 2], seed, tally) for seed in range(soak.WORKERS)))
    fresh_replica = await start(store_url=url)
    soak.check(fresh_replica.sim.ledger, tally)
    views = [(await h.admin("GET", "/_sim/players"))[1] for h in (a, b, fresh_replica)]
    assert views[0] == views[1] == views[2]


async def test_the_journal_shows_every_replica_and_survives_a_restart(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    await a.amb.bet("member001", "R1", 10, txn="on-a")
    await b.amb.bet("member001", "R2", 10, txn="on-b")
    for h in (a, b):
        entries = (await h.admin("GET", "/_sim/journal?dialect=ambslot"))[1]
        assert sorted(e["transaction"] for e in entries) == ["on-a", "on-b"]
        verified = await h.admin("POST", "/_sim/journal/verify", {"match": {"operation": "bet"}, "count": 2})
        assert verified[1]["ok"], verified
    await a.close()
    again = await start(store_url=url)
    entries = (await again.admin("GET", "/_sim/journal"))[1]
    assert sorted(e["transaction"] for e in entries) == ["on-a", "on-b"]
    assert entries[0]["response"]["body"]["data"]["balance"]["after"] == Decimal(990)  # exact, not a float
    assert (await b.admin("DELETE", "/_sim/journal"))[0] == 200
    for h in (b, again):
        assert (await h.admin("GET", "/_sim/journal"))[1] == []


async def test_a_restarted_simulator_serves_the_same_state(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    first = await start(store_url=url, scenario=RACE_SCENARIO)
    await first.amb.bet("racer", "R1", 30, txn="b1")
    await first.xpro.authenticate()
    assert (await first.xpro.create_member("player001")).json["code"] == 0
    assert (await first.xpro.transfer("player001", "25.50", "T1")).json["code"] == 0
    await first.close()
    # started again, with another scenario on its command line: the shared state wins
    again = await start(store_url=url, scenario="name: other\n")
    assert again.sim.scenario.name == "race" and again.sim.engine.rules[0].name == "five-refusals"
    player = (await again.admin("GET", "/_sim/players/ambslot/racer"))[1]
    assert player["balance"] == Decimal(70) and [t["transaction"] for t in player["transactions"]] == ["b1"]
    await again.xpro.authenticate()
    assert (await again.xpro.balance("player001")).json["data"]["balance"] == Decimal("25.50")
    assert (await again.xpro.transfer("player001", "25.50", "T1")).json["code"] == 3  # T1 is used
    assert (await again.admin("GET", "/_sim/invariants"))[1]["ok"]


# Redis lost and back


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own (it is stopped and started again), persisting to its directory."""
    with tempfile.TemporaryDirectory(prefix="sim-redis-own-") as directory:
        server = RedisServer(directory, persist=True)
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def test_redis_lost_then_back(start: Start, own_redis: RedisServer) -> None:
    h = await start(store_url=own_redis.url("lost"))
    await h.xpro.authenticate()
    assert (await h.xpro.create_member("player001")).json["code"] == 0
    assert (await h.amb.bet("member001", "R1", 10, txn="b1")).json["status"]["code"] == 0
    own_redis.stop()
    assert (await h.amb.bet("member001", "R2", 10, txn="b2")).json["status"]["code"] == 999
    fizzy = await h.fizzy.withdraw("p-1", 10, txn="w1")
    assert fizzy.status == 500 and fizzy.json["code"] == "ERROR_UNKNOWN_ERROR"
    assert (await h.xpro.transfer("player001", 5, "T1")).json["code"] == 7
    status, health = await h.admin("GET", "/_sim/health")
    assert status == 503 and health["store"]["ok"] is False
    assert (await h.admin("GET", "/_sim/players"))[0] == 503
    own_redis.start()
    status, health = await h.admin("GET", "/_sim/health")
    assert status == 200 and health["store"]["ok"] is True
    assert await amb_balance(h, "member001") == 990  # b2 was not applied
    assert (await h.amb.bet("member001", "R2", 10, txn="b2")).json["status"]["code"] == 0
    assert (await h.fizzy.withdraw("p-1", 10, txn="w1")).status == 200
    assert (await h.xpro.transfer("player001", 5, "T1")).json["code"] == 0
    status, body = await h.admin("GET", "/_sim/invariants")
    assert body["ok"] and body["transactions"] == 4, body  # b1, b2, w1, T1: each once


# real server processes


def served(url: str, scenario: Path | None = None, *extra: str) -> list[str]:
    return ["--store", url, "--quiet", *(["--scenario", str(scenario)] if scenario else []), *extra]


async def test_two_server_processes_race_on_one_player(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> None:
    spawn, scenario = processes(request, tmp_path)
    url = fresh(redis_server)
    replicas = [spawn(served(url, scenario)), spawn(served(url, scenario))]
    async with aiohttp.ClientSession() as http:
        clients = [AmbslotClient(r.url, session=http) for r in replicas]
        # 50 bets of 3 from 100, alternating replicas, all at once: exactly 33 fit
        bets = await asyncio.gather(
            *(clients[i % 2].bet("racer", f"R{i}", 3, txn=f"b{i}") for i in range(50)), return_exceptions=False
        )
        codes = [r.json["status"]["code"] for r in bets]
        assert codes.count(0) == 33 and codes.count(800) == 17
        # one bet sent 10 times at once to both replicas: applied once (the others replay it or are pending)
        payload = clients[0].fields("racer", "RX", 1, txn="same")
        same = await asyncio.gather(*(clients[i % 2].call("/bet", payload) for i in range(10)))
        assert {r.json["status"]["code"] for r in same} <= {0, 1601} and any(r.status == 200 for r in same)
        # exactly five balance calls refused over both replicas
        balances = await asyncio.gather(*(clients[i % 2].balance("racer") for i in range(20)))
        assert [r.json["status"]["code"] for r in balances].count(800) == 5
        # nth: 3 counts payouts across replicas: the third is the one refused
        payouts = [await clients[i % 2].payout("racer", f"R{i}", 0, txn=f"p{i}") for i in range(4)]
        assert [r.json["status"]["code"] for r in payouts] == [0, 0, 900, 0]
    for replica in replicas:
        player: Any = replica.get("/_sim/players/ambslot/racer")
        assert Decimal(str(player["balance"])) == 0 and replica.get("/_sim/invariants")["ok"]
        rules: Any = replica.get("/_sim/rules")
        assert [r["hits"] for r in rules["rules"]] == [5, 1]


def test_workers_share_the_port_and_the_store(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> None:
    spawn, scenario = processes(request, tmp_path)
    url = fresh(redis_server)
    first = spawn(served(url, scenario))
    assert first.stop() == 0
    # two workers join the store the first one left: its scenario and players, named in the one banner
    workers = spawn(served(url, None, "--workers", "2"))
    assert "Scenario race" in workers.banner
    rest = workers.proc.stdout.readline() if workers.proc.stdout else ""
    assert "2 worker processes" in rest and "redis://127.0.0.1" in rest
    health: Any = workers.get("/_sim/health")
    assert health["store"]["ok"] and health["scenario"] == "race"
    for _ in range(4):  # whichever worker answers, the player the first process seeded is there
        player: Any = workers.get("/_sim/players/ambslot/racer")
        assert Decimal(str(player["balance"])) == 100
    assert workers.stop() == 0


def test_workers_need_a_shared_store_and_a_reachable_one() -> None:
    refused = run("serve", "--port", "0", "--workers", "2")
    assert refused.returncode == 2 and "--workers 2 needs a shared store" in refused.stderr
    unreachable = run("serve", "--port", "0", "--store", "redis://127.0.0.1:1/0")
    assert unreachable.returncode == 1 and "listening" not in unreachable.stdout
    assert unreachable.stderr.count("\n") == 1 and "cannot reach the store redis://127.0.0.1:1/0" in unreachable.stderr


def test_a_malformed_store_is_refused() -> None:
    refused = run("serve", "--port", "0", "--store", "redis://127.0.0.1:6379/x")
    assert refused.returncode == 2 and "must be a number" in refused.stderr
    refused = run("serve", "--port", "0", "--store", "postgres://x")
    assert refused.returncode == 2 and "neither 'memory' nor redis://" in refused.stderr


def test_the_two_replica_deployment_files_fit_together() -> None:
    """No Docker engine here: the compose file, nginx's upstreams and the shared config checked for what
    they promise (two replicas on one Redis, behind the proxy, with a config the simulator accepts)."""
    deploy = Path(__file__).resolve().parents[3] / "deploy"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [name for name, s in services.items() if s.get("environment", {}).get("WALLET_SIM_STORE")]
    assert len(replicas) == 2 and "redis" in services
    for name in replicas:
        env = services[name]["environment"]
        assert env["WALLET_SIM_STORE"].startswith("redis://redis:6379/") and env["WALLET_SIM_ADMIN_TOKEN"]
        assert parse_store(env["WALLET_SIM_STORE"]) is not None
        assert int(env["WALLET_SIM_WORKERS"]) >= 1
        mounted = env["WALLET_SIM_CONFIG"]
        assert any(v.endswith(f":{mounted}:ro") for v in services[name]["volumes"])
    nginx = (deploy / "nginx.conf").read_text()
    assert sorted(re.findall(r"server (sim-\w+):8080", nginx)) == sorted(replicas)
    assert "X-Forwarded-Host" in nginx and "proxy_next_upstream off" in nginx
    settings = config.load(str(deploy / "config.yaml"))
    assert settings.server.trusted_proxies and settings.xpro.token_secret_given
