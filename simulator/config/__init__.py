"""Settings: the defaults, a YAML config file (``--config``) over them, command-line flags over that.

Every setting is declared once, in :mod:`simulator.config.settings` (its docstring says how to add one);
the schema, the defaults and the docs table below are derived from there.

The demo credentials of PROTOCOLS.md section 5 are part of the defaults, so ``make run`` with no config
can be called at once. A config file *adds* agents and brands; one with the id of a demo agent replaces it,
and ``demo: false`` removes the demo credentials altogether (for a simulator reachable by others).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from simulator.config import declare, yamlsrc
from simulator.config.settings import (
    LOOPBACK_PROXIES,
    AmbAgent,
    AmbslotSettings,
    FizzyBrand,
    FizzySettings,
    Network,
    ScorecardSettings,
    ServerSettings,
    Settings,
    XproAgent,
    XproSettings,
    xpro_key,
)
from simulator.errors import SourceError
from simulator.money import decimals

__all__ = [
    "CERTIFY_DEFAULTS",
    "CONFIG_SCHEMA",
    "DEFAULTS",
    "DEMO",
    "LOOPBACK_PROXIES",
    "AmbAgent",
    "AmbslotSettings",
    "FizzyBrand",
    "FizzySettings",
    "Network",
    "ScorecardSettings",
    "ServerSettings",
    "Settings",
    "XproAgent",
    "XproSettings",
    "build",
    "from_dict",
    "load",
    "xpro_key",
]

# The dashboard's live feed (GET /_sim/events): one batch per interval (seconds) of at most UI_FEED_BATCH
# entries, the newest (older ones are counted as dropped); UI_FEED_BACKLOG entries when a page connects;
# at most UI_FEED_PAGES pages watching at once.
UI_FEED_INTERVAL = 0.25
UI_FEED_BATCH = 100
UI_FEED_BACKLOG = 100
UI_FEED_PAGES = 16

DEMO: dict[str, Any] = {
    "xpro": {
        "agents": [
            {
                "id": "demo",
                "secret": "demo-secret",
                "api_key": "0123456789abcdef0123456789abcdef",
                "currency": "THB",
            }
        ]
    },
    "fizzy": {"brands": [{"public_key": "demo-public-key", "private_key": "demo-private-key", "currency": "EUR"}]},
    "ambslot": {"agents": [{"id": "demo", "currency": "THB"}]},
}

#: the defaults as a config document writes them (derived from the declarations)
DEFAULTS: dict[str, Any] = declare.defaults(Settings)
#: the config file's JSON Schema (derived from the declarations)
CONFIG_SCHEMA: dict[str, Any] = declare.schema(Settings)

# `python -m simulator certify`: what the runner uses when neither flag, environment nor target file says
CERTIFY_DEFAULTS: dict[str, Any] = {
    "amount": "1.00",  # the stake of every case (whole units keep a float-based wallet exact but in precision.cents)
    "timeout": 10.0,  # seconds per call
    "game": "certify-game",
    "concurrency": 20,  # parallel calls of the concurrency.* cases and of load mode
    "max_body": 1_048_576,  # bytes: a wallet answer larger than this is a failure naming its size
    "cancel_id": "own",  # AMBSlot: a cancel carries its own transactionId (seed 003), or "bet": the bet's
    "settle": "yes",  # AMBSlot: /settle is opt-in for the operator; "no" skips settle.ok up front
    "abandon_wait": 2.0,  # seconds the runner watches the balance after abandoning a call
    "load_duplicates": 0.1,  # load mode: share of rounds whose debit is sent twice
    "load_abandoned": 0.05,  # ... abandoned and retried
    "load_rollbacks": 0.1,  # ... rolled back (cancelled) instead of settled
    "max_seconds": 300.0,  # the whole run (cases, load or explore mode) stops after this long
    "explore_steps": 10,  # explore mode: at most this many steps per random history
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class _Build:
    """One pass over a parsed config document: every problem collected (file, line, key), then raised."""

    def __init__(
        self,
        raw_file: dict[str, Any],
        src: yamlsrc.SourceMap,
        found: list[tuple[int, str]] | None = None,
        refused: set[tuple[str | int, ...]] | None = None,
    ) -> None:
        self.file = raw_file
        self.src = src
        self.raw = _merge(DEFAULTS, raw_file)
        #: (line, problem) of everything found so far: the schema's first, sorted by line when raised
        self.found: list[tuple[int, str]] = found or []
        self.refused = refused or set()  # key paths the schema refused (their defaults stand in)

    def problem(self, path: list[str | int], message: str) -> None:
        self.found.append((self.src.line(path), self.src.where(path, message)))

    def check(self, path: list[str | int], convert: Callable[[], Any]) -> Any:
        try:
            return convert()
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def value(self, d: declare.Declared) -> Any:
        """A setting's value from the merged document, converted as declared."""
        section = self.raw[d.section] if d.section else self.raw
        if d.meta.tenant is not None:
            return self.tenants(d)
        given = d.meta.read(section) if d.meta.read else section[d.name]
        convert = d.meta.convert or _plain(d.type)
        return self.check([d.section, d.name] if d.section else [d.name], lambda: convert(given))

    def tenants(self, d: declare.Declared) -> dict[str, Any]:
        """Demo tenants (unless ``demo: false``) then the file's, a file entry replacing a demo one by id."""
        spec = d.meta.tenant
        assert spec is not None
        entries: dict[str, Any] = {}
        if self.raw["demo"]:
            entries.update((e[spec.id_key], e) for e in DEMO[d.section][d.name])
        from_file = self.file.get(d.section, {}).get(d.name, [])
        entries.update((e[spec.id_key], e) for e in from_file)
        made: dict[str, Any] = {}
        for ident, entry in entries.items():
            index = next((i for i, e in enumerate(from_file) if e.get(spec.id_key) == ident), None)
            where: list[str | int] = [d.section]  # a demo entry's problem: the section
            if index is not None:
                where = [d.section, d.name, index, spec.checked or spec.id_key]
            made[ident] = self.check(where, functools.partial(spec.make, entry))
        if not made and (d.section, d.name) not in self.refused:
            self.problem([d.section, d.name], f"no {d.name} configured (and demo: false)")
        return made

    def decimals(self, values: dict[str, dict[str, Any]]) -> None:
        """A starting balance with more decimal places than the dialect takes could never be paid out exactly."""
        for name, section in values.items():
            balance, places = section.get("default_balance"), section.get("max_decimals")
            if isinstance(balance, Decimal) and isinstance(places, int) and decimals(balance) > places:
                self.problem([name, "default_balance"], f"{balance} has more than {places} decimal places")

    def settings(self) -> Settings:
        values: dict[str, dict[str, Any]] = {"": {}}
        for d in declare.declared(Settings):
            values.setdefault(d.section, {})[d.name] = self.value(d)
        self.decimals(values)
        if self.found:
            raise SourceError([text for _, text in sorted(self.found, key=lambda item: item[0])])
        values["xpro"]["token_secret_given"] = bool(self.raw["xpro"]["token_secret"])
        made = {name: section(**values[name]) for name, section in declare.sections(Settings)}
        return Settings(**values[""], **made, source=self.src.filename)


def _plain(hint: Any) -> Callable[[Any], Any]:
    """How a file value becomes a setting of a plain type: floats from integers, tuples from lists."""
    if hint is float:
        return float
    origin = getattr(hint, "__origin__", None)
    if origin in (tuple, frozenset):
        return origin  # type: ignore[no-any-return]
    return lambda value: value


def build(raw_file: dict[str, Any] | None, source: yamlsrc.SourceMap | None = None) -> Settings:
    """Settings from a parsed config document (``None``: the defaults). Raises :class:`SourceError`."""
    raw_file = raw_file or {}
    src = source or yamlsrc.SourceMap("(defaults)", None)
    # nothing to check in an empty document (and no jsonschema import on the plain start-up path)
    errors = yamlsrc.schema_errors(raw_file, CONFIG_SCHEMA, src) if raw_file else []
    if any(not path for _, path, _ in errors):  # the document itself is refused: nothing more to check
        raise SourceError([text for _, _, text in errors])
    # one pass: the checks run on what the schema accepted (a refused key falls back to its default)
    kept, refused = _without(raw_file, [path for _, path, _ in errors])
    return _Build(kept, src, [(line, text) for line, _, text in errors], refused).settings()


def _without(data: dict[str, Any], paths: list[list[str | int]]) -> tuple[dict[str, Any], set[tuple[str | int, ...]]]:
    """``data`` without the parts the schema refused (a list with a refused entry goes as a whole), and the
    key paths removed."""
    kept = copy.deepcopy(data)
    removed: set[tuple[str | int, ...]] = set()
    for path in paths:
        cut = next((i for i, part in enumerate(path) if isinstance(part, int)), len(path))
        where = [str(part) for part in path[:cut]]
        parent: Any = kept
        for part in where[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and where:
            parent.pop(where[-1], None)
            removed.add(tuple(where))
    return kept, removed


def load(path: str | None) -> Settings:
    """Settings from a config file (``None``: the defaults). Raises :class:`SourceError`."""
    if path is None:
        return build(None)
    data, source = yamlsrc.read(path)
    if data is not None and not isinstance(data, dict):
        raise SourceError([source.where([], "a config file is a mapping (server:, xpro:, fizzy:, ambslot:)")])
    return build(data, source)


def from_dict(data: dict[str, Any]) -> Settings:
    """Settings from a plain dict (tests, the pytest plugin)."""
    return build(data, yamlsrc.SourceMap("(dict)", None))
