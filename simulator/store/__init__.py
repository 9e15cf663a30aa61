"""Where a simulator keeps its state: ``memory`` (this process, the default) or a Redis server shared by
every replica (``redis://host:port/db?prefix=NAME``, see :mod:`simulator.store.redis`).

The :class:`~simulator.service.Simulator` is *given* a :class:`Store` (composition, as an HTTP client is
given its transport): the pipeline calls the store's hooks (admit, claim, decide, perform), the domain
commands (reset, replace the scenario, set a player, add/change/remove a rule, clear the journal) go
through :meth:`Store.command`, and the control API calls :meth:`Store.refresh` first, then reads through the
store: :meth:`Store.read_players`, :meth:`~Store.read_player`, :meth:`~Store.read_transactions` and
:meth:`~Store.read_tombstones` answer one :class:`Page` at a time (an opaque cursor to the next one),
:meth:`~Store.read_invariants`, :meth:`~Store.count_players` and :meth:`~Store.books` (the scorecard's
lookups) the rest; a cursor it never gave raises :class:`BadCursor`.
:class:`simulator.store.memory.LocalStore` is the embedded implementation; the Redis one shares the state.

The store is chosen by ``--store``, else the ``WALLET_SIM_STORE`` environment variable, else ``store:`` in
the config file. :func:`connect` builds the store a setting names; :func:`simulator.service.open_simulator`
builds a simulator on it.
"""

from __future__ import annotations

import asyncio

from simulator.config import Settings
from simulator.ledger.store import Books
from simulator.store.base import (
    DEFAULT_PAGE,
    DEFAULT_PREFIX,
    MAX_PAGE,
    BadCursor,
    Command,
    Page,
    Rerun,
    Store,
    StoreError,
    StoreUnavailable,
    StoreURL,
    chosen,
    parse,
    scenario_files,
)

__all__ = [
    "DEFAULT_PAGE",
    "DEFAULT_PREFIX",
    "MAX_PAGE",
    "BadCursor",
    "Books",
    "Command",
    "Page",
    "Rerun",
    "Store",
    "StoreError",
    "StoreURL",
    "StoreUnavailable",
    "check_reachable",
    "chosen",
    "connect",
    "parse",
    "scenario_files",
]


async def connect(settings: Settings) -> tuple[Store, Settings]:
    """The store ``settings.store`` names, connected (raises StoreError if it cannot be), and the settings
    to run with (replicas share one XPro token secret)."""
    where = parse(settings.store)
    if where is None:
        from simulator.store.memory import LocalStore

        return LocalStore(), settings
    from simulator.store import redis  # redis-py is imported only by those who use it

    return await redis.connect(settings, where)


def check_reachable(settings: Settings) -> None:
    """Raise StoreError unless the store answers (``--workers`` checks once before starting them)."""
    where = parse(settings.store)
    if where is None:
        return
    from simulator.store import redis

    asyncio.run(redis.ping(where))
