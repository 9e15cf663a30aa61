"""pytest plugin (entry point ``pytest11``): a wallet simulator for your test session, no glue code.

::

    def test_my_wallet_client(wallet_simulator):          # one server per session, reset before each test
        wallet_simulator.load_scenario("builtin:insufficient_funds")   # or a path, or YAML text
        client = MyClient(base_url=wallet_simulator.url)
        ...
        assert wallet_simulator.journal(operation="withdraw")[-1]["response"]["body"]["code"] == 2

The server runs on 127.0.0.1 and a free port, in a background thread with its own event loop, so sync and
async tests alike can call it; the handle talks to it through the ``/_sim`` control API. ``async def``
tests that use the fixture need no async plugin (:func:`pytest_pyfunc_call` runs them when no plugin has
taken them). Amounts come back as ``Decimal``. Options: ``--wallet-sim-config FILE`` and
``--wallet-sim-scenario FILE|builtin:NAME`` (repeatable) or the ini option ``wallet_sim_scenario`` set the
starting scenario (without one a test starts with no players and no rules); the marker
``@pytest.mark.wallet_sim_scenario("builtin:happy_path")`` (or a path) starts one test with another.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.testing import ServerThread, WalletSimulator, WalletSimulatorError

__all__ = ["ServerThread", "WalletSimulator", "WalletSimulatorError"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wallet-simulator", "wallet-API simulator fixture")
    group.addoption("--wallet-sim-config", default=None, help="simulator config file for the wallet_simulator fixture")
    group.addoption(
        "--wallet-sim-scenario",
        action="append",
        default=[],
        help="scenario file loaded by the wallet_simulator fixture (repeatable, applied in order)",
    )
    parser.addini(
        "wallet_sim_scenario",
        type="linelist",
        default=[],
        help="the wallet_simulator fixture's starting scenario: files or builtin:NAME, one a line (paths "
        "relative to the ini file); --wallet-sim-scenario replaces it. Without either a test starts with "
        "no scenario: no players and no rules",
    )


MARKERS = ("wallet_sim_scenario", "wallet_scenario")  # the second: the earlier name, still accepted


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wallet_sim_scenario(scenario): the wallet simulator starts this test with this scenario (a path, "
        "builtin:NAME or YAML text) instead of the session's",
    )
    config.addinivalue_line("markers", "wallet_scenario(scenario): the earlier name of wallet_sim_scenario")


def starting_scenarios(config: pytest.Config) -> list[str]:
    """``--wallet-sim-scenario`` if given, else the ``wallet_sim_scenario`` ini lines (relative to the ini file)."""
    given: list[str] = config.getoption("--wallet-sim-scenario")
    if given:
        return given
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    lines: list[str] = config.getini("wallet_sim_scenario")
    return [line if line.startswith("builtin:") or os.path.isabs(line) else str(base / line) for line in lines]


@pytest.fixture(scope="session")
def wallet_simulator_session(request: pytest.FixtureRequest) -> Iterator[WalletSimulator]:
    """The session's simulator; most tests want ``wallet_simulator`` (reset before each test) instead."""
    from simulator.scenarios import loader

    server = ServerThread.from_files(
        request.config.getoption("--wallet-sim-config"), starting_scenarios(request.config)
    )
    url = server.start()
    try:
        yield WalletSimulator(url, loader.dump(server.scenario))
    finally:
        server.stop()


@pytest.fixture
def wallet_simulator(wallet_simulator_session: WalletSimulator, request: pytest.FixtureRequest) -> WalletSimulator:
    """The session's simulator, back at its starting state: players, no transactions, empty journal."""
    sim = wallet_simulator_session
    sim._bases = [Path.cwd(), Path(str(request.node.path)).parent, Path(str(request.config.rootpath))]
    sim.reset()
    for name in MARKERS:
        marker = request.node.get_closest_marker(name)
        if marker is None:
            continue
        if not marker.args:
            raise pytest.UsageError(f"{name} needs a scenario: @pytest.mark.{name}('builtin:happy_path')")
        try:
            sim.load_scenario(str(marker.args[0]))
        except WalletSimulatorError as exc:
            raise pytest.UsageError(f"{name}: {exc}") from None
        break
    return sim


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``async def`` tests that use ``wallet_simulator`` run without an async plugin: the fixture is
    synchronous (the server has its own thread), so a fresh event loop per test is all they need. A test an
    async plugin has taken over is left to it: pytest-asyncio has replaced the coroutine function by then,
    and anyio / trio tests carry their marker or backend fixture."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function) or "wallet_simulator" not in pyfuncitem.fixturenames:
        return None
    if "anyio_backend" in pyfuncitem.fixturenames or any(
        pyfuncitem.get_closest_marker(name) for name in ("anyio", "trio", "asyncio")
    ):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(function(**arguments))
    return True
