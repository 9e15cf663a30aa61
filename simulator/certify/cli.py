"""``python -m simulator certify fizzy|ambslot``: the flags. The run itself (``command.py``) is imported only
when the command runs, so ``serve`` does not pay for rich and the case modules at start-up."""

from __future__ import annotations

import argparse
from typing import Any

from simulator.certify.target import KEYS
from simulator.config import CERTIFY_DEFAULTS

DIALECTS = ("ambslot", "fizzy")


def add_parser(sub: Any) -> None:
    """Register ``certify`` on the main parser's subcommands."""
    d = CERTIFY_DEFAULTS
    c = sub.add_parser(
        "certify",
        help="play the provider against YOUR Fizzy Bubbly or AMBSlot wallet and judge it",
        description="Run named cases against an operator's wallet. Settings: flags, then CERTIFY_* environment "
        "variables, then --target FILE. Exit 0: nothing failed; 1: a case failed; 2: the run could not happen.",
    )
    c.add_argument("dialect", choices=DIALECTS, help="the protocol your wallet speaks")
    c.add_argument("--target", help="YAML file with the settings below (wallet_url:, private_key:, ...)")
    for key, (dialects, _) in KEYS.items():
        c.add_argument(
            "--" + key.replace("_", "-"), dest=key, help=f"({', '.join(dialects)}) env CERTIFY_{key.upper()}"
        )
    c.add_argument(
        "--no-settle",
        dest="settle",
        action="store_const",
        const="no",
        help="(ambslot) the wallet does not implement the opt-in /settle: settle.ok is skipped",
    )
    c.add_argument("--cases", action="append", metavar="GLOB", help="run only matching case ids (repeatable)")
    c.add_argument("--list", action="store_true", help="print the case table and exit")
    c.add_argument(
        "--format",
        choices=["plain", "table", "json"],
        help="what is printed: a table, one line per case, or the JSON report (default: table on a terminal, "
        "plain otherwise, e.g. in CI logs)",
    )
    c.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    c.add_argument("--json", metavar="FILE", help="write the JSON report")
    c.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    c.add_argument("-v", "--verbose", action="store_true", help="show every exchange (secrets redacted)")
    c.add_argument(
        "--load", type=int, metavar="ROUNDS", help="load mode: play ROUNDS whole rounds instead of the cases"
    )
    c.add_argument("--duplicates", type=float, default=d["load_duplicates"], help="load: share of duplicated debits")
    c.add_argument("--abandoned", type=float, default=d["load_abandoned"], help="load: share abandoned and retried")
    c.add_argument("--rollbacks", type=float, default=d["load_rollbacks"], help="load: share undone instead of won")
    c.add_argument(
        "--max-seconds",
        type=float,
        default=d["max_seconds"],
        help="stop the whole run (cases, load or explore) after this long; cases not reached are skipped (time budget)",
    )
    c.add_argument("--seed", type=int, help="load: seed of the round mix; explore: seed of the histories")
    c.add_argument(
        "--explore", type=int, metavar="N", help="explore mode: N random histories, a failure shrunk (docs/explore.md)"
    )
    c.add_argument(
        "--explore-steps",
        type=int,
        default=d["explore_steps"],
        metavar="K",
        help="explore: at most K steps per history",
    )
    c.add_argument("--replay", metavar="FILE", help="run exactly the history in FILE again (written by --explore)")
    c.add_argument("--history-out", metavar="FILE", help="explore: where to write the shortest failing history")
    c.add_argument("--abandon-wait", type=float, default=d["abandon_wait"], help=argparse.SUPPRESS)
    c.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from simulator.certify.command import run_command

    return run_command(args)
