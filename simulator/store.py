"""Where a simulator keeps its state: ``memory`` (this process, the default) or a Redis server shared by
every replica (``redis://host:port/db?prefix=NAME``, see :mod:`simulator.shared`).

The store is chosen by ``--store``, else the ``WALLET_SIM_STORE`` environment variable, else ``store:`` in
the config file. :func:`open_simulator` is the one place that builds a :class:`Simulator` for either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from simulator.config import Settings
from simulator.errors import SimulatorError
from simulator.scenarios.model import Scenario
from simulator.service import Simulator

DEFAULT_PREFIX = "wallet-sim"


class StoreError(SimulatorError):
    """A store that cannot be used: a malformed URL, or a server that does not answer."""


@dataclass(frozen=True)
class StoreURL:
    url: str  # what redis-py connects to (without our ``prefix`` parameter)
    prefix: str  # every key starts with ``{prefix}:``

    @property
    def shown(self) -> str:
        """The URL without a password, for the banner and the health check."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + f" prefix={self.prefix}"


def parse(text: str) -> StoreURL | None:
    """``memory`` -> None; ``redis://[:password@]host[:port][/db][?prefix=NAME]`` (or ``rediss://``)."""
    if text == "memory":
        return None
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise StoreError(f"store {text!r} is neither 'memory' nor redis://host:port/db")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix or any(c in prefix for c in "{}: \t\r\n"):
        raise StoreError(f"store prefix {prefix!r} must be non-empty, without braces, colons or spaces")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StoreError(f"store database {db!r} must be a number (redis://host:port/0)")
    rest = urllib.parse.urlencode(query, doseq=True)
    return StoreURL(urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), prefix)


def chosen(settings: Settings, flag: str | None) -> Settings:
    """Settings with the store the flag (or WALLET_SIM_STORE, see simulator.config.environ), else the config
    file, chose."""
    value = flag or settings.store
    parse(value)  # refuse a malformed one before anything starts
    return dataclasses.replace(settings, store=value)


async def open_simulator(
    settings: Settings,
    scenario: Scenario | None = None,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Simulator:
    """A simulator on the store ``settings.store`` names, connected (raises StoreError if it cannot be).
    Call ``await sim.open()`` once the app is built (a shared store then loads its state)."""
    options: dict[str, Any] = {}
    if clock is not None:
        options["clock"] = clock
    if sleep is not None:
        options["sleep"] = sleep
    where = parse(settings.store)
    if where is None:
        return Simulator(settings, scenario, **options)
    from simulator import shared  # redis-py is imported only by those who use it

    return await shared.connect(settings, scenario, where, **options)


def check_reachable(settings: Settings) -> None:
    """Raise StoreError unless the store answers (``--workers`` checks once before starting them)."""
    where = parse(settings.store)
    if where is None:
        return
    from simulator import shared

    asyncio.run(shared.ping(where))
