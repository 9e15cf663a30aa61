"""Shared fixtures: a real server on 127.0.0.1 and a free port per test, always stopped, plus the
reference clients pointed at it."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp import web

from simulator import config, jsonio
from simulator.dialects import registry
from simulator.dialects.client import AmbslotClient, FizzyClient, XproClient
from simulator.scenarios import loader
from simulator.scenarios.model import Scenario
from simulator.server.app import create_app
from simulator.server.serve import bind
from simulator.service import Simulator, open_simulator

pytest_plugins = ["pytester"]


class Clock:
    """A settable clock for the simulator (token expiry, timestamps, session TTL)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    sim: Simulator
    runner: web.AppRunner
    url: str
    http: aiohttp.ClientSession
    xpro: XproClient
    fizzy: FizzyClient
    amb: AmbslotClient

    async def admin(self, method: str, path: str, body: Any = None, text: str | None = None) -> tuple[int, Any]:
        data = text.encode() if text is not None else (jsonio.dumps(body).encode() if body is not None else None)
        kind = {"Content-Type": "application/yaml" if text is not None else "application/json"} if data else {}
        async with self.http.request(method, self.url + path, data=data, headers=kind) as response:
            raw = await response.read()
            try:
                return response.status, jsonio.loads(raw)
            except jsonio.JSONError:
                return response.status, raw.decode()

    # The state as users read and change it: through the control API, never ``sim.ledger`` (a replica on a
    # shared store does not hold the players and transactions in memory). Money comes back as Decimal.

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """One ``/_sim`` call that must succeed (``path`` after ``/_sim``): its JSON answer."""
        status, answer = await self.admin(method, "/_sim" + path, body)
        assert status < 400, f"{method} /_sim{path} answered {status}: {answer}"
        return answer

    async def player_view(self, dialect: str, player: str, tenant: str | None = None) -> dict[str, Any]:
        """``GET /_sim/players/{dialect}/{player}``: the player (balance, currency, flags, sessions) with its
        transactions, newest first; ``tenant``: the agent / public key (default: the first configured)."""
        found = await self.find_player(dialect, player, tenant)
        assert found is not None, f"no {dialect} player {player!r} under {tenant or 'the first tenant'}"
        return found

    async def find_player(self, dialect: str, player: str, tenant: str | None = None) -> dict[str, Any] | None:
        """Like :meth:`player_view`, but None when there is no such player (404)."""
        query = _query(**{registry.get(dialect).tenant_key: tenant})
        status, answer = await self.admin("GET", f"/_sim/players/{dialect}/{quote(player, safe='')}{query}")
        if status == 404:
            return None
        assert status == 200, f"GET /_sim/players/{dialect}/{player} answered {status}: {answer}"
        assert isinstance(answer, dict)
        return answer

    async def players(self, dialect: str | None = None, q: str | None = None) -> list[dict[str, Any]]:
        """``GET /_sim/players``, every one of them (following ``X-Next-Cursor`` page by page)."""
        return await self.every("/_sim/players", dialect=dialect, q=q)

    async def transactions(
        self, dialect: str | None = None, player: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /_sim/transactions``, newest first, every one of them (page by page)."""
        return await self.every("/_sim/transactions", dialect=dialect, player=player, status=status)

    async def every(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged control-API listing: pages of 1,000, following ``X-Next-Cursor``."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = _query(**params, limit=1000, cursor=cursor)
            async with self.http.get(self.url + path + query) as response:
                raw = await response.read()
                assert response.status == 200, f"GET {path}{query} answered {response.status}: {raw[:300]!r}"
                found += jsonio.loads(raw)
                cursor = response.headers.get("X-Next-Cursor")
            if cursor is None:
                return found

    async def invariants(self) -> dict[str, Any]:
        """``GET /_sim/invariants``: ``{"ok": true, ...}`` (200) or ``{"ok": false, "problems": [...]}`` (409)."""
        status, answer = await self.admin("GET", "/_sim/invariants")
        assert status in (200, 409) and isinstance(answer, dict), f"GET /_sim/invariants answered {status}: {answer}"
        assert answer["ok"] is (status == 200)
        return answer

    async def set_player(self, dialect: str, player: str, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        """``PUT /_sim/players/{dialect}/{player}``: create or change a player (balance, flags, bet_limit...)."""
        body = {**fields, **({registry.get(dialect).tenant_key: tenant} if tenant is not None else {})}
        answer: dict[str, Any] = await self.control("PUT", f"/players/{dialect}/{quote(player, safe='')}", body)
        return answer

    async def set_balance(
        self, dialect: str, player: str, balance: Decimal | int | str, tenant: str | None = None
    ) -> dict[str, Any]:
        """Move a balance to an exact value (booked as an ``adjust`` transaction)."""
        return await self.set_player(dialect, player, tenant, balance=balance)

    async def close(self) -> None:
        for client in (self.xpro, self.fizzy, self.amb):
            await client.close()
        await self.http.close()
        await self.runner.cleanup()
        await self.sim.close()


def _query(**params: Any) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""


Start = Callable[..., Awaitable[Harness]]


REDIS_INSTALL = "sudo apt-get install -y redis-server   (or: sudo sh scripts/system-deps.sh)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port(taken: set[int]) -> int:
    """A free port for a cluster node: at most 55535, its bus port (10000 higher) free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        if {port, port + 10_000} & taken:
            continue
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        taken.update((port, port + 10_000))
        return port
    pytest.fail("no free port pair for a Redis Cluster node")


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1 and a free port, in a temporary directory, no persistence."""

    def __init__(self, directory: str, persist: bool = False) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            pytest.fail(f"redis-server is not installed; the Redis store tests need it: {REDIS_INSTALL}")
        self.binary, self.directory, self.port, self.persist = binary, directory, free_port(), persist
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, prefix: str | None = None) -> str:
        return f"redis://127.0.0.1:{self.port}/0" + (f"?prefix={prefix}" if prefix else "")

    def start(self, extra: list[str] | None = None) -> None:
        persist = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persist, *(extra or [])]
        args += ["--dir", self.directory, "--protected-mode", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: the server answers PING within a few ms
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


class RedisCluster:
    """A real 3-node Redis Cluster on loopback (``--cluster-enabled yes`` three times, then
    ``redis-cli --cluster create``), no replicas, no persistence."""

    def __init__(self, directory: str) -> None:
        self.nodes = [RedisServer(os.path.join(directory, str(i))) for i in range(3)]
        taken: set[int] = set()
        for node in self.nodes:
            os.makedirs(node.directory)
            node.port = cluster_port(taken)

    def url(self, prefix: str | None = None) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}" + (f"?prefix={prefix}" if prefix else "")

    def start(self) -> None:
        for node in self.nodes:
            node.start(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        args = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes)]
        subprocess.run([*args, "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # bounded: the nodes agree within a second or two
            info = subprocess.run(
                [cli, "-p", str(self.nodes[0].port), "cluster", "info"], capture_output=True, text=True, timeout=5
            ).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail("the Redis Cluster did not come up")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with tempfile.TemporaryDirectory(prefix="sim-redis-cluster-") as directory:
        cluster = RedisCluster(directory)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="sim-redis-") as directory:
        server = RedisServer(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of the test's own (it is stopped and started again), persisting to its directory."""
    with tempfile.TemporaryDirectory(prefix="sim-redis-own-") as directory:
        server = RedisServer(directory, persist=True)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store of the ``start`` fixture: "memory", or the one the test is parametrized with (a module
    marked ``both_stores`` runs every test on each of :data:`STORES`)."""
    return str(getattr(request, "param", "memory"))


#: the two-store parametrisation, declared once: modules opt in with ``pytestmark = pytest.mark.both_stores``
STORES = ["memory", "redis"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", STORES, indirect=True)


@pytest.fixture
async def start(store: str, request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    started: list[Harness] = []
    server: RedisServer | RedisCluster | None = None
    if store in ("redis", "cluster"):
        server = request.getfixturevalue("redis_server" if store == "redis" else "redis_cluster")

    async def _start(
        cfg: dict[str, Any] | None = None,
        scenario: str | None = None,
        clock: Callable[[], float] | None = None,
        admin_token: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        scenario_file: str | None = None,
        store_url: str | None = None,
    ) -> Harness:
        """``store_url``: join that store (replicas); else on Redis a fresh key prefix per harness, so that
        tests share the server but never each other's state."""
        if store_url is None and server is not None:
            store_url = server.url(f"t{uuid.uuid4().hex[:12]}")
        settings = config.from_dict({"store": store_url, **(cfg or {})} if store_url else (cfg or {}))
        scen: Scenario | None
        if scenario_file:
            scen = loader.read(scenario_file, settings)
        else:
            scen = loader.parse(scenario, "(test)", settings) if scenario else None
        options: dict[str, Any] = {}
        if clock:
            options["clock"] = clock
        if sleep:
            options["sleep"] = sleep
        sim = await open_simulator(settings, scen, **options)
        # the same runner as `serve`: in particular no handler cancellation when a client disconnects
        runner = web.AppRunner(create_app(sim, admin_token), access_log=None, shutdown_timeout=5)
        await sim.open()
        await runner.setup()
        sock = bind("127.0.0.1", 0)
        await web.SockSite(runner, sock).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        http = aiohttp.ClientSession()
        harness = Harness(
            sim,
            runner,
            url,
            http,
            XproClient(url, session=http),
            FizzyClient(url, session=http),
            AmbslotClient(url, session=http),
        )
        started.append(harness)
        return harness

    yield _start
    for harness in started:
        await harness.close()


@pytest.fixture
async def h(start: Start) -> Harness:
    return await start()


@pytest.fixture
async def xp(h: Harness) -> Harness:
    """A harness whose XPro client holds a token and whose agent has player001 with balance 0."""
    await h.xpro.authenticate()
    reply = await h.xpro.create_member("player001")
    assert reply.json["code"] == 0
    return h


ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve test applications (operator wallets for certify) on loopback; each is stopped after the test."""
    runners: list[web.AppRunner] = []

    async def _serve(application: web.Application) -> str:
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        sock = bind("127.0.0.1", 0)
        await web.SockSite(runner, sock).start()
        runners.append(runner)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield _serve
    for runner in runners:
        await runner.cleanup()


# Markers, applied here in one place: ``pytest -m "not slow and not redis and not browser"`` is the inner
# loop. ``slow``: the modules (or single tests) below, which start processes, run soaks or build wheels.
SLOW_MODULES = {
    "test_cli",
    "test_cli_calls",
    "test_deploy",
    "test_plugin",
    "test_soak",
    "test_state_machine",
    "test_hostile",
    "test_certify",
}
SLOW_TESTS = {
    "test_each_module_imports_alone",  # one interpreter per module
    "test_the_wheel_ships_the_library_and_builtin_reads_it",
    "test_a_stalled_body_is_answered_and_closed",
    "test_plugin_report_and_assert_clean",
}
BROWSER_FIXTURES = {"browser", "page"}
REDIS_FIXTURES = {"redis_server", "redis_cluster", "own_redis"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The markers: a test on a real Redis is ``redis``, on Chromium ``browser``, the long ones ``slow``."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        module = getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2]
        on_redis = callspec is not None and callspec.params.get("store") in ("redis", "cluster")
        if on_redis or fixtures & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if fixtures & BROWSER_FIXTURES and module.startswith("test_dashboard"):
            item.add_marker(pytest.mark.browser)
        if module in SLOW_MODULES or getattr(item, "originalname", "") in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
