"""The embedded store: the state lives in this process's ledger, engine and journal (dicts, columns and a
ring), so every hook of :class:`simulator.store.Store` keeps its default behaviour."""

from __future__ import annotations

from simulator.store.base import Store


class LocalStore(Store):
    kind = "memory"
