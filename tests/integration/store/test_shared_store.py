"""The Redis store against a real ``redis-server``: replicas sharing one wallet, real server processes racing
on one player, restarts, and Redis lost and back while serving."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import urllib.parse
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from simulator import config
from simulator.dialects.client import AmbslotClient
from simulator.store import StoreError
from simulator.store import parse as parse_store
from tests.conftest import Harness, RedisServer, Start
from tests.integration.cli.test_cli import Served, run, serve  # noqa: F401 (the fixture that starts serve processes)
from tests.integration.control import test_paging as paging
from tests.integration.wallets import test_soak as soak

RACE_SCENARIO = """\
name: race
players:
  - {dialect: ambslot, username: racer, balance: 100}
rules:
  - {name: five-refusals, match: {dialect: ambslot, operation: balance}, respond: {error: insufficient_funds}, times: 5}
  - {name: every-third, match: {dialect: ambslot, operation: payout, nth: 3}, respond: {error: duplicate}}
"""

# a rule added while requests are guessed: every AMBSlot bet is refused (800), nothing applied
REFUSE_BETS = {
    "name": "refuse",
    "match": {"dialect": "ambslot", "operation": "bet"},
    "respond": {"error": "insufficient_funds"},
}


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
    await soak.check(fresh_replica, tally)
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
    assert "Scenario  race" in workers.banner
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


@pytest.mark.parametrize("variant", ["compose.yaml", "compose.cluster.yaml"])
def test_the_two_replica_deployment_files_fit_together(variant: str) -> None:
    """No Docker engine here: the compose files, nginx's upstreams and the shared config checked for what
    they promise (two replicas on one Redis or one Redis Cluster, behind the proxy, with a config the
    simulator accepts)."""
    deploy = Path(__file__).resolve().parents[3] / "deploy"
    compose = yaml.safe_load((deploy / variant).read_text())
    services = compose["services"]
    replicas = [name for name, s in services.items() if s.get("environment", {}).get("WALLET_SIM_STORE")]
    assert len(replicas) == 2
    for name in replicas:
        env = services[name]["environment"]
        where = parse_store(env["WALLET_SIM_STORE"])
        assert where is not None and env["WALLET_SIM_ADMIN_TOKEN"]
        hosts = [host for host, _ in where.nodes] or [str(urllib.parse.urlsplit(where.url).hostname)]
        assert hosts and all(host in services for host in hosts)  # the store's servers are services here
        assert int(env["WALLET_SIM_WORKERS"]) >= 1
        mounted = env["WALLET_SIM_CONFIG"]
        assert any(v.endswith(f":{mounted}:ro") for v in services[name]["volumes"])
    nginx = (deploy / "nginx.conf").read_text()
    assert sorted(re.findall(r"server (sim-\w+):8080", nginx)) == sorted(replicas)
    assert "X-Forwarded-Host" in nginx and "proxy_next_upstream off" in nginx
    settings = config.load(str(deploy / "config.yaml"))
    assert settings.server.trusted_proxies and settings.xpro.token_secret_given


# the review's findings and the failure cases of the redesign, each against a real redis-server


def redis_client(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url.split("?")[0], decode_responses=True)


def test_the_product_never_rebuilds_an_http_request() -> None:
    """Control changes are domain commands replayed as commands: no test helper in the product."""
    package = Path(__file__).resolve().parents[3] / "simulator"
    users = [p.name for p in package.rglob("*.py") if "test_utils" in p.read_text(encoding="utf-8")]
    assert users == []


async def test_replicas_replay_domain_commands(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    status, _ = await a.admin(
        "POST", "/_sim/rules", text="name: slow\nmatch: {dialect: fizzy, operation: deposit}\nfault: drop\n"
    )
    assert status == 201
    assert (await a.admin("PUT", "/_sim/players/ambslot/member001", {"balance": 10}))[0] == 201
    await a.sim.adjust_player("ambslot", "demo", "member001", Decimal("-0.5"))
    status, rules = await b.admin("GET", "/_sim/rules")
    assert status == 200 and [r["name"] for r in rules["rules"]][-1] == "slow"
    assert await amb_balance(b, "member001") == await amb_balance(a, "member001") == Decimal("9.5")
    assert (await b.admin("DELETE", "/_sim/rules/slow"))[0] == 200
    assert "slow" not in [r["name"] for r in (await a.admin("GET", "/_sim/rules"))[1]["rules"]]


async def test_the_store_keeps_no_unknown_extra_fields(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    h = await start(store_url=url)
    junk = "x" * 200_000
    reply = await h.fizzy.withdraw("p-1", 10, txn="w-junk", junk=junk)
    assert reply.status == 200, reply.json
    await h.sim.close()  # the journal stream keeps a capped body: flushed and left out here
    prefix = url.split("prefix=")[1]
    client = redis_client(url)
    try:
        sizes = {}
        async for key in client.scan_iter(match="[{]" + prefix + "*"):
            if not key.endswith("}:journal") and await client.type(key) == "string":
                sizes[key] = len(await client.get(key))
    finally:
        await client.aclose()
    assert sizes and max(sizes.values()) < 2_000, sizes


async def test_redis_losing_its_data_is_noticed_and_no_replica_diverges(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    assert (await a.amb.bet("member001", "R1", 10, txn="b1")).json["status"]["code"] == 0
    assert await amb_balance(b, "member001") == await amb_balance(a, "member001")
    client = redis_client(url)
    try:
        pattern = "[{]" + url.split("prefix=")[1] + "[}:]*"  # the store-wide keys and every tenant's
        for key in [k async for k in client.scan_iter(match=pattern)]:
            await client.delete(key)  # what FLUSHALL does to this test's keys, without touching other tests'
    finally:
        await client.aclose()
    first, second = await amb_balance(a, "member001"), await amb_balance(b, "member001")
    assert first == second  # the same, fresh state on both: the scenario's starting balance again
    for h in (a, b):
        status, health = await h.admin("GET", "/_sim/health")
        assert status == 200 and health["store"]["data_lost"]["times"] == 1
    assert (await b.amb.bet("member001", "R1", 10, txn="b1")).json["status"]["code"] == 0
    assert await amb_balance(a, "member001") == second - 10
    assert (await a.admin("GET", "/_sim/invariants"))[1]["ok"] is True


async def test_pooled_connections_to_a_restarted_redis_are_retried_once(start: Start, own_redis: RedisServer) -> None:
    h = await start(store_url=own_redis.url("restart"))
    await asyncio.gather(*(h.amb.balance("member001") for _ in range(30)))  # fill the connection pool
    own_redis.stop()
    own_redis.start()
    replies = await asyncio.gather(*(h.amb.bet("member001", f"R{i}", 1, txn=f"b{i}") for i in range(30)))
    assert [r.json["status"]["code"] for r in replies] == [0] * 30


async def test_the_shared_nonce_outlives_every_replicas_own_window(start: Start, redis_server: RedisServer) -> None:
    url = fresh(redis_server)
    h = await start({"xpro": {"timestamp_skew": 60}}, store_url=url)
    await h.xpro.authenticate()
    client = redis_client(url)
    try:
        keys = [k async for k in client.scan_iter(match="*nonce:*")]
        ttls = [await client.ttl(k) for k in keys if url.split("prefix=")[1] in k]
    finally:
        await client.aclose()
    assert ttls and min(ttls) > 60  # twice the skew: a future timestamp's nonce is still known


async def test_a_request_that_skips_its_read_ahead_still_shares_its_xpro_nonce(
    start: Start, redis_server: RedisServer
) -> None:
    """A replica that served a player last runs its next XPro request without the read-ahead's round trip:
    the commit script sets the request's nonce. Replayed on another replica, it is refused (83); a request
    another replica served first is refused when replayed here. Each transfer is applied once."""
    url = fresh(redis_server)
    scenario = "name: nonces\nplayers:\n  - {dialect: xpro, username: player001, balance: 100}\n"
    a, b = await start(store_url=url, scenario=scenario), await start(store_url=url)
    b.xpro.token = await a.xpro.authenticate()  # the token key is shared: a's token holds on b
    client = redis_client(url)

    async def sets() -> int:  # SET commands Redis has run (scripts' included)
        return int((await client.info("commandstats")).get("cmdstat_set", {}).get("calls", 0))

    async def balance(h: Harness) -> Decimal:
        return Decimal(str((await h.xpro.balance("player001")).json["data"]["balance"]))

    try:
        start_balance = await balance(a)
        assert (await a.xpro.transfer("player001", 1, "n0")).json["code"] == 0  # a has committed for player001
        first = a.xpro.prepare("/v2/members/transaction", {"username": "player001", "amount": 5, "transId": "n1"})
        before = await sets()
        assert (await a.xpro.send(first)).json["code"] == 0
        assert await sets() == before + 1  # the nonce's, by the commit script (a read-ahead sets a claim too)
        replay = await b.xpro.send(dataclasses.replace(first, url=first.url.replace(a.url, b.url)))
        assert replay.json["code"] == 83, replay.json
        second = b.xpro.prepare("/v2/members/transaction", {"username": "player001", "amount": 7, "transId": "n2"})
        assert (await b.xpro.send(second)).json["code"] == 0
        replay = await a.xpro.send(dataclasses.replace(second, url=second.url.replace(b.url, a.url)))
        assert replay.json["code"] == 83, replay.json
        assert await balance(a) == await balance(b) == start_balance + 13
    finally:
        await client.aclose()


async def test_an_in_flight_claim_lives_no_longer_than_the_request_timeout(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    scenario = "name: slow\nrules:\n  - {name: slow, match: {dialect: ambslot, operation: bet}, delay: 500ms}\n"
    h = await start({"server": {"request_timeout": 3}}, scenario=scenario, store_url=url)
    bet = asyncio.ensure_future(h.amb.bet("member001", "R1", 1, txn="b1"))
    client = redis_client(url)
    try:
        # this store's claims only, many keys a step (the shared server holds every earlier test's keys), and
        # no longer than the bet is in flight
        claims = "{" + url.split("prefix=")[1] + ":*}:c:*"
        ttls: list[int] = []
        while not ttls and not bet.done():
            await asyncio.sleep(0.05)
            ttls = [
                await client.pttl(k) async for k in client.scan_iter(match=claims, count=10_000) if k.endswith(":b1")
            ]
    finally:
        await client.aclose()
    assert ttls, "the claim was not seen while the bet was in flight"
    assert 0 < ttls[0] <= 3000
    assert (await bet).json["status"]["code"] == 0


async def test_a_reset_prunes_the_log_and_a_new_replica_joins_the_same_state(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    a = await start(store_url=url)
    assert (await a.admin("POST", "/_sim/rules", text="name: late\nmatch: {operation: cancel}\nfault: drop\n"))[
        0
    ] == 201
    for n in range(20):
        assert (await a.amb.bet("member001", f"R{n}", 1, txn=f"b{n}")).json["status"]["code"] == 0
    assert (await a.admin("POST", "/_sim/reset"))[0] == 200
    assert (await a.admin("DELETE", "/_sim/journal"))[0] == 200
    assert (await a.admin("POST", "/_sim/reset"))[0] == 200  # supersedes the first reset and the clear
    await a.sim.close()  # waits for the background sweep
    client = redis_client(url)
    try:
        kinds = [fields["k"] for _, fields in await client.xrange("{" + url.split("prefix=")[1] + "}:log")]
    finally:
        await client.aclose()
    assert kinds == ["genesis", "cmd", "cmd"]  # the scenario, the rule, the last reset: requests are not logged
    async with redis_client(url) as client:  # the earlier epochs' keys were swept in the background
        earlier = [k async for k in client.scan_iter(match="[{]" + url.split("prefix=")[1] + ":*}:[12]:*")]
    assert earlier == []
    b = await start(store_url=url)
    assert "late" in [r["name"] for r in (await b.admin("GET", "/_sim/rules"))[1]["rules"]]
    status, body = await b.admin("GET", "/_sim/invariants")
    assert status == 200 and body["ok"] and body["transactions"] == 0


async def test_a_first_control_read_decodes_no_more_than_the_journal_keeps(
    start: Start, redis_server: RedisServer
) -> None:
    url = fresh(redis_server)
    cfg = {"server": {"journal_size": 20}}
    a, b = await start(cfg, store_url=url), await start(cfg, store_url=url)
    for n in range(60):
        assert (await a.amb.bet("member001", f"R{n}", 1, txn=f"b{n}", big="y" * 40_000)).json["status"]["code"] == 0
    assert (await a.admin("GET", "/_sim/journal"))[0] == 200  # a publishes everything it has
    status, entries = await b.admin("GET", "/_sim/journal")
    link = b.sim.store.journal_link  # type: ignore[attr-defined]
    assert status == 200 and len(entries) == 20 and link.decoded_last == 20
    assert [e["transaction"] for e in entries][-1] == "b59"
    request = entries[-1]["request"]
    assert request["truncated"] is True and len(request["prefix"]) <= 16_384  # a capped body in the stream


# Redis Cluster: a real 3-node cluster on loopback


@pytest.mark.parametrize("store", ["cluster"])
async def test_replicas_on_a_redis_cluster_share_one_wallet(start: Start, redis_cluster: Any) -> None:
    url = redis_cluster.url(f"c{uuid.uuid4().hex[:12]}")
    a, b = await start(store_url=url), await start(store_url=url)
    await a.xpro.authenticate()  # a request that names no key of the wallet
    assert (await a.fizzy.withdraw("p-1", 10, txn="w1")).status == 200
    assert (await b.fizzy.rollback("p-1", "w1", txn="rb1")).status == 200
    racing = [(a if n % 2 else b).amb.bet("member001", f"R{n}", 1, txn=f"b{n}") for n in range(40)]
    assert all(r.json["status"]["code"] == 0 for r in await asyncio.gather(*racing))
    assert await amb_balance(a, "member001") == await amb_balance(b, "member001")
    for h in (a, b):
        status, body = await h.admin("GET", "/_sim/invariants")
        assert status == 200 and body["ok"] and body["transactions"] == 42
        status, health = await h.admin("GET", "/_sim/health")
        assert status == 200 and health["store"]["url"].startswith("redis+cluster://127.0.0.1:")
    # the control reads page by cursor on the cluster too (their script runs in the tenant's slot)
    for path, items, count in (
        ("/_sim/transactions", None, 42),
        ("/_sim/players/ambslot/member001", "transactions", 40),
    ):
        walked, query = [], "?limit=5"
        while query:
            async with b.http.get(b.url + path + query) as response:
                assert response.status == 200
                body = await response.json()
                walked += body[items] if items else body
                query = (
                    f"?limit=5&cursor={response.headers['X-Next-Cursor']}"
                    if "X-Next-Cursor" in response.headers
                    else ""
                )
        assert len(walked) == count and len({(t["dialect"], t["transaction"]) for t in walked}) == count


@pytest.mark.parametrize("store", ["cluster"])
async def test_retention_does_not_shift_pages_on_a_cluster(start: Start, redis_cluster: Any) -> None:
    """test_paging's retention walk on the Cluster: the cut counters live in the tenant's slot."""
    await paging.test_rows_dropped_by_retention_between_two_pages_do_not_shift_them(start)


def test_a_cluster_store_url_names_its_nodes() -> None:
    where = parse_store("redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7001?prefix=staging")
    assert where is not None and where.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert where.prefix == "staging" and "secret" not in where.shown
    with pytest.raises(StoreError):
        parse_store("redis+cluster://10.0.0.1")


async def test_while_redis_is_away_unpublished_journal_entries_stay_bounded(
    start: Start, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.store import journal

    monkeypatch.setattr(journal, "QUEUE_BYTES", 200_000)
    h = await start(store_url=own_redis.url("away"))
    own_redis.stop()
    for n in range(30):
        reply = await h.fizzy.withdraw("p-1", 1, txn=f"w{n}", junk="z" * 50_000)
        assert reply.status == 500  # the internal error: nothing applied
    link = h.sim.store.journal_link  # type: ignore[attr-defined]
    assert link.waiting_bytes <= 200_000 and link.dropped > 0
    own_redis.start()
    status, health = await h.admin("GET", "/_sim/health")
    assert status == 200 and health["store"]["journal_dropped"] == link.dropped


async def test_a_replica_killed_mid_commit_leaves_no_half_change_and_no_blocked_player(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> None:
    spawn, scenario = processes(request, tmp_path)
    url = fresh(redis_server)
    cfg = tmp_path / "short.yaml"
    cfg.write_text("server: {request_timeout: 1}\n")  # an orphaned claim answers "pending" 1 s at most
    victim, survivor = (spawn(served(url, scenario, "--config", str(cfg))) for _ in range(2))
    async with aiohttp.ClientSession() as http:
        doomed, alive = AmbslotClient(victim.url, session=http), AmbslotClient(survivor.url, session=http)
        payloads = [doomed.fields("racer", f"R{i}", 1, txn=f"k{i}") for i in range(60)]
        bets = [asyncio.ensure_future(doomed.call("/bet", p)) for p in payloads]
        await asyncio.sleep(0.15)
        victim.proc.kill()  # SIGKILL: no cleanup, whatever it was committing
        done = await asyncio.gather(*bets, return_exceptions=True)
        acknowledged = {f"k{i}" for i, r in enumerate(done) if not isinstance(r, BaseException)}
        acknowledged = {t for t in acknowledged if done[int(t[1:])].json["status"]["code"] == 0}  # type: ignore[union-attr]
        # every id again, on the survivor: applied once in all (a retry of an applied one is its replay)
        await asyncio.sleep(1.1)  # the killed replica's claims have expired
        retries = await asyncio.gather(*(alive.call("/bet", p) for p in payloads))  # the same payloads
        assert all(r.json["status"]["code"] == 0 for r in retries), [r.json for r in retries]
    player: Any = survivor.get("/_sim/players/ambslot/racer")
    applied = {t["transaction"] for t in player["transactions"]}
    assert acknowledged <= applied and len(applied) == len(player["transactions"])
    assert Decimal(str(player["balance"])) == 100 - len(applied) == 40  # each of the 60 ids applied once
    assert survivor.get("/_sim/invariants")["ok"]


async def test_a_request_leaves_nothing_behind_in_the_replica_whether_or_not_it_ran(
    start: Start, redis_server: RedisServer
) -> None:
    """What admit() reads ahead or claims is given back even when a rule answers instead of the wallet
    (it must never serve another request that gets the same object id later)."""
    url = fresh(redis_server)
    rule = "{match: {dialect: ambslot, operation: balance}, respond: {error: internal_error}, times: 3}"
    rules = f"name: t\nrules:\n  - {rule}\n"
    h = await start(scenario=rules, store_url=url)
    for _ in range(3):
        assert (await h.amb.balance("member001")).json["status"]["code"] != 0
    assert (await h.amb.bet("member001", "R1", 1, txn="b1")).json["status"]["code"] == 0
    assert (await h.amb.bet("member001", "R1", 1, txn="b1")).json["status"]["code"] == 0  # a replay: no debit
    store: Any = h.sim.store
    assert store._loaded == {} and store._held == {} and store._released == set() and store._turns == {}
    assert store._guessed == set()
    assert await amb_balance(h, "member001") == 999  # created on first sight with 1000


async def test_concurrent_adjustments_of_one_player_each_keep_their_row(
    start: Start, redis_server: RedisServer
) -> None:
    h = await start(store_url=fresh(redis_server))
    assert await amb_balance(h, "member001") == 1000  # created on first sight
    await asyncio.gather(*(h.sim.adjust_player("ambslot", "demo", "member001", Decimal(1)) for _ in range(20)))
    player = await h.player_view("ambslot", "member001")
    assert player["balance"] == 1020 and len([t for t in player["transactions"] if t["kind"] == "adjust"]) == 20
    assert len({t["transaction"] for t in player["transactions"]}) == 20
    assert (await h.invariants())["ok"]


async def test_requests_on_one_player_take_turns_inside_a_replica(start: Start, redis_server: RedisServer) -> None:
    """Within a replica they would only conflict: they wait for each other instead of running again; two
    replicas on one player still meet in the compare-and-set, and both stay exact."""
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    bets = [a.amb.bet("member001", f"R{n}", 1, txn=f"b{n}") for n in range(40)]
    assert all(r.json["status"]["code"] == 0 for r in await asyncio.gather(*bets))
    store: Any = a.sim.store
    assert store.conflicts == 0 and store._turns == {} and store._loaded == {}
    both = [(a if n % 2 else b).amb.bet("member001", f"S{n}", 1, txn=f"s{n}") for n in range(40)]
    assert all(r.json["status"]["code"] == 0 for r in await asyncio.gather(*both))
    assert await amb_balance(b, "member001") == 1000 - 80
    assert (await a.invariants())["ok"]


async def test_a_player_served_here_is_guessed_and_every_guess_is_checked(
    start: Start, redis_server: RedisServer
) -> None:
    """A replica runs a request on a player it served last with what it knows (no read ahead); the commit
    checks every key it guessed, so a player another replica changed meanwhile is read and run again, even
    for an answer that writes nothing (a balance), and is then read ahead for a while."""
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    store: Any = a.sim.store
    assert (await a.amb.bet("member001", "R1", 1, txn="a1")).json["status"]["code"] == 0  # known to a from here
    assert (await a.amb.bet("member001", "R2", 1, txn="a2")).json["status"]["code"] == 0  # guessed, and right
    assert store.missed_guesses == 0
    # what a replica remembers is what Redis holds, text for text (a new row's number included)
    names = {store.keys.of(key, store.epoch): text for key, text in store._known.items()}
    assert len(names) >= 5 and await store.redis.mget(list(names)) == list(names.values())
    # a payout reads the round and the bet this replica wrote: guessed right, no round trip before it
    assert (await a.amb.payout("member001", "R2", 3, txn="p2")).json["status"]["code"] == 0
    assert store.missed_guesses == 0 and await amb_balance(a, "member001") == 1001
    assert (await b.amb.bet("member001", "R3", 1, txn="b1")).json["status"]["code"] == 0
    assert await amb_balance(a, "member001") == 1000  # a guessed 1001; its check found b's bet
    assert store.missed_guesses == 1
    health = (await a.admin("GET", "/_sim/health"))[1]["store"]
    assert (health["missed_guesses"], health["conflicts"]) == (1, 0)  # said where an operator looks
    assert (await b.amb.bet("member001", "R4", 1, txn="b2")).json["status"]["code"] == 0
    assert (await a.amb.bet("member001", "R5", 1, txn="a3")).json["status"]["code"] == 0  # read ahead now
    assert store.missed_guesses == 1 and store.conflicts == 0
    assert await amb_balance(b, "member001") == 998
    # a duplicate of a bet the other replica applied: refused by the check, then answered as a replay
    assert (await b.amb.bet("member001", "R6", 1, txn="b3")).json["status"]["code"] == 0
    assert (await a.amb.bet("member001", "R6", 1, txn="b3")).json["status"]["code"] == 0
    assert await amb_balance(a, "member001") == 997
    assert (await a.invariants())["ok"] and store._guessed == set()


async def test_a_rule_added_on_another_replica_holds_for_a_guessed_request(
    start: Start, redis_server: RedisServer
) -> None:
    """A guessed request skips reading the configuration log ahead; its commit finds the log moved, and the
    request is decided again on the new configuration (the rule answers; nothing is applied)."""
    url = fresh(redis_server)
    a, b = await start(store_url=url), await start(store_url=url)
    assert (await a.amb.bet("member001", "R1", 1, txn="a1")).json["status"]["code"] == 0
    assert (await b.admin("POST", "/_sim/rules", REFUSE_BETS))[0] == 201
    assert (await a.amb.bet("member001", "R2", 1, txn="a2")).json["status"]["code"] == 800
    assert await amb_balance(a, "member001") == 999
    rules = (await a.admin("GET", "/_sim/rules"))[1]["rules"]
    assert [(r["name"], r["hits"]) for r in rules] == [("refuse", 1)]
    # a request admitted that way whose player was forgotten before it ran (read, not guessed): the same
    assert (await b.admin("DELETE", "/_sim/rules/refuse"))[0] == 200
    assert (await a.amb.bet("member001", "R3", 1, txn="a3")).json["status"]["code"] == 0
    store: Any = a.sim.store
    store._guess = lambda keys: {}
    assert (await b.admin("POST", "/_sim/rules", {**REFUSE_BETS, "name": "again"}))[0] == 201
    assert (await a.amb.bet("member001", "R4", 1, txn="a4")).json["status"]["code"] == 800
    assert await amb_balance(b, "member001") == 998


async def test_a_log_started_without_its_tail_key_gets_one_when_a_replica_joins(
    start: Start, redis_server: RedisServer
) -> None:
    """A guessed commit checks the log's tail by one key (set by whatever appends to the log). A store whose
    log began before that key was kept gets it from the first replica that joins, so guessed requests still
    see rules added after it."""
    url = fresh(redis_server)
    a = await start(store_url=url)
    store: Any = a.sim.store
    assert await store.redis.get(store.keys.tail) == store.cursor  # the genesis entry
    await store.redis.delete(store.keys.tail)
    b = await start(store_url=url)  # joins: the tail is named again
    assert await store.redis.get(store.keys.tail) == store.cursor
    assert (await b.amb.bet("member001", "R1", 1, txn="b1")).json["status"]["code"] == 0
    assert (await a.admin("POST", "/_sim/rules", REFUSE_BETS))[0] == 201
    assert await store.redis.get(store.keys.tail) == store.cursor  # the rule's entry
    assert (await b.amb.bet("member001", "R2", 1, txn="b2")).json["status"]["code"] == 800  # guessed, moved, decided
    assert await amb_balance(b, "member001") == 999


async def test_what_a_replica_remembers_stays_bounded_and_keeps_its_hot_player(
    start: Start, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its bound the replica forgets its oldest texts, an eighth at a time; a player it keeps serving is
    rewritten by every commit, so it is never among the oldest, and its requests stay guessed."""
    from simulator.store import redis as redis_store

    monkeypatch.setattr(redis_store, "KNOWN", 16)
    a = await start(store_url=fresh(redis_server))
    store: Any = a.sim.store
    for n in range(30):  # every bet writes new keys (its row, its round): far past 16
        assert (await a.amb.bet("member001", f"R{n}", 1, txn=f"b{n}")).json["status"]["code"] == 0
        assert len(store._known) <= 16
    player = ("p", "ambslot", next(k[2] for k in store._known if k[0] == "p"), "member001")
    assert player in store._known and store.missed_guesses == 0
    assert await amb_balance(a, "member001") == 1000 - 30
