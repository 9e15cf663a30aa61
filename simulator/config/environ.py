"""The ``serve`` flags and their environment variables (containers, CI services): one table.

Precedence: a command-line flag beats its variable, a variable beats the config file, the config file beats
the defaults. An empty variable counts as unset. The flags that set a setting, and their variables, come
from the setting's declaration (``env=``, ``flag=`` in :mod:`simulator.config.settings`); the few that are
not settings (the files to read, ``--quiet``, ``--workers``) are listed here. docs/configuration.md shows
this table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.config import declare
from simulator.config.settings import Settings

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _int(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("not a whole number")
    return int(text)


def _bool(text: str) -> bool:
    if text.strip().lower() in TRUE:
        return True
    if text.strip().lower() in FALSE:
        return False
    raise ValueError(f"not a boolean ({'/'.join(TRUE)} or {'/'.join(FALSE)})")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Variable:
    name: str
    dest: str  # the serve flag's argparse destination
    convert: Callable[[str], Any]
    meaning: str

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


def _choice(choices: list[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be {' or '.join(choices)}")
        return text

    return convert


def _converter(d: declare.Declared) -> Callable[[str], Any]:
    if "enum" in d.meta.schema:
        return _choice(d.meta.schema["enum"])
    hint = d.type
    return {int: _int, bool: _bool}.get(hint, str)


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


#: the settings that are serve flags (``flag=`` in their declaration)
FLAGGED: tuple[declare.Declared, ...] = tuple(d for d in declare.declared(Settings) if d.meta.flag)

VARIABLES: tuple[Variable, ...] = (
    Variable("WALLET_SIM_CONFIG", "config", str, "config file"),
    Variable("WALLET_SIM_SCENARIO", "scenario", _list, "scenario files or builtin:NAME, comma-separated, in order"),
    *(
        Variable(d.meta.env, dest(d.meta.flag), _converter(d), d.meta.help)
        for d in FLAGGED
        if d.meta.env and d.meta.flag
    ),
    Variable("WALLET_SIM_QUIET", "quiet", _bool, "1/true: no line per request"),
    Variable("WALLET_SIM_WORKERS", "workers", _int, "processes sharing the port, with a Redis store"),
)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The serve options that set a setting, each with its declared type, choices and help."""
    for d in FLAGGED:
        assert d.meta.flag is not None
        shown = f"{d.meta.help} (default {d.default})" if d.default not in (None, False) else d.meta.help
        if d.type is bool:
            parser.add_argument(d.meta.flag, action="store_true", default=None, help=shown)
        elif "enum" in d.meta.schema:
            parser.add_argument(d.meta.flag, choices=d.meta.schema["enum"], help=shown)
        else:
            parser.add_argument(d.meta.flag, type=int if d.type is int else str, help=shown)


def overrides(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The settings of ``section`` the command line (or a variable) gave: ``{"port": 0, ...}``. A switch
    only ever turns its setting on (``WALLET_SIM_INSECURE_ADMIN=0`` leaves the config file's value)."""
    given = {d.name: getattr(args, dest(d.meta.flag or ""), None) for d in FLAGGED if d.section == section}
    return {name: value for name, value in given.items() if value is not None and value is not False}


def apply(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """Fill every serve option the command line left unset from its variable; the problems, if any."""
    problems: list[str] = []
    for var in VARIABLES:
        raw = environ.get(var.name, "")
        given = getattr(args, var.dest, None)
        if raw == "" or not (given is None or given is False or given == []):  # --port 0 is given
            continue
        try:
            setattr(args, var.dest, var.convert(raw))
        except ValueError as exc:
            problems.append(f"{var.name}={raw!r}: {exc}")
    return problems


def epilog() -> str:
    """The table for ``serve --help``."""
    width = max(len(v.name) for v in VARIABLES)
    rows = "\n".join(f"  {v.name:<{width}}  {v.meaning} ({v.flag})" for v in VARIABLES)
    return f"environment variables (a flag beats its variable, a variable beats --config):\n{rows}"


def markdown() -> str:
    """docs/configuration.md: every setting, then this table."""
    rows = [(v.name, v.flag, v.meaning) for v in VARIABLES]
    return declare.markdown(Settings, rows)
