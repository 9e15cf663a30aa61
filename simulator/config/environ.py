"""Environment variables for ``serve`` (containers, CI services): one table, one per serve flag.

Precedence: a command-line flag beats its variable, a variable beats the config file, the config file beats
the defaults in :mod:`simulator.config`. An empty variable counts as unset. The README's "Deployment" table
is this table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Variable:
    name: str
    dest: str  # the serve flag's argparse destination
    convert: Callable[[str], Any]
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable("WALLET_SIM_HOST", "host", str, "address to bind (--host); 0.0.0.0 in the container image"),
    Variable("WALLET_SIM_PORT", "port", _int, "port (--port); 0 picks a free one"),
    Variable("WALLET_SIM_CONFIG", "config", str, "config file (--config)"),
    Variable("WALLET_SIM_SCENARIO", "scenario", _list, "scenario files or builtin:NAME, comma-separated (--scenario)"),
    Variable("WALLET_SIM_ADMIN_TOKEN", "admin_token", str, "token required on /_sim (--admin-token)"),
    Variable("WALLET_SIM_INSECURE_ADMIN", "insecure_admin", _bool, "leave /_sim open off loopback (--insecure-admin)"),
    Variable("WALLET_SIM_LOG_FORMAT", "log_format", _log_format, "text or json (--log-format)"),
    Variable("WALLET_SIM_JOURNAL_SIZE", "journal_size", _int, "requests kept by the journal (--journal-size)"),
    Variable("WALLET_SIM_QUIET", "quiet", _bool, "no line per request (--quiet)"),
    Variable("WALLET_SIM_STORE", "store", str, "memory or redis://host:port/db?prefix=NAME (--store)"),
    Variable("WALLET_SIM_WORKERS", "workers", _int, "processes sharing the port, with a Redis store (--workers)"),
)


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
    rows = "\n".join(f"  {v.name:<{width}}  {v.meaning}" for v in VARIABLES)
    return f"environment variables (a flag beats its variable, a variable beats --config):\n{rows}"
