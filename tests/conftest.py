"""Shared fixtures: a real server on 127.0.0.1 and a free port per test, always stopped, plus the
reference clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from simulator import config, jsonio
from simulator.app import create_app
from simulator.cli import bind
from simulator.client import AmbslotClient, FizzyClient, XproClient
from simulator.scenarios import loader
from simulator.scenarios.model import Scenario
from simulator.service import Simulator

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

    async def close(self) -> None:
        for client in (self.xpro, self.fizzy, self.amb):
            await client.close()
        await self.http.close()
        await self.runner.cleanup()


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[Harness] = []

    async def _start(
        cfg: dict[str, Any] | None = None,
        scenario: str | None = None,
        clock: Callable[[], float] | None = None,
        admin_token: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        scenario_file: str | None = None,
    ) -> Harness:
        settings = config.from_dict(cfg or {})
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
        sim = Simulator(settings, scen, **options)
        # the same runner as `serve`: in particular no handler cancellation when a client disconnects
        runner = web.AppRunner(create_app(sim, admin_token), access_log=None, shutdown_timeout=5)
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
