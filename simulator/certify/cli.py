"""``python -m simulator certify fizzy|ambslot``: flags, the run with a progress bar, the reports, the exit code.

Exit codes: 0 nothing failed (warnings allowed), 1 at least one case failed, 2 the run could not happen
(bad target settings, wallet unreachable or refusing the first balance call), always as one clear line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from simulator.certify import ambslot, fizzy, load
from simulator.certify.core import Exchange, Suite, Unreachable
from simulator.certify.report import Report, terminal, to_html, to_json, to_junit
from simulator.certify.runner import Run
from simulator.certify.target import KEYS, Target, resolve
from simulator.certify.wire import WALLETS
from simulator.config import CERTIFY_DEFAULTS
from simulator.errors import SourceError

SUITES: dict[str, Suite] = {"fizzy": fizzy.suite, "ambslot": ambslot.suite}


def add_parser(sub: Any) -> None:
    """Register ``certify`` on the main parser's subcommands."""
    d = CERTIFY_DEFAULTS
    c = sub.add_parser(
        "certify",
        help="play the provider against YOUR Fizzy Bubbly or AMBSlot wallet and judge it",
        description="Run named cases against an operator's wallet. Settings: flags, then CERTIFY_* environment "
        "variables, then --target FILE. Exit 0: nothing failed; 1: a case failed; 2: the run could not happen.",
    )
    c.add_argument("dialect", choices=sorted(SUITES))
    c.add_argument("--target", help="YAML file with the settings below (wallet_url:, private_key:, ...)")
    for key, (dialects, _) in KEYS.items():
        c.add_argument(
            "--" + key.replace("_", "-"), dest=key, help=f"({', '.join(dialects)}) env CERTIFY_{key.upper()}"
        )
    c.add_argument("--cases", action="append", metavar="GLOB", help="run only matching case ids (repeatable)")
    c.add_argument("--list", action="store_true", help="print the case table and exit")
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
    c.add_argument("--max-seconds", type=float, default=d["load_max_seconds"], help="load: stop after this long")
    c.add_argument("--seed", type=int, help="load: seed of the round mix")
    c.add_argument("--abandon-wait", type=float, default=d["abandon_wait"], help=argparse.SUPPRESS)
    c.set_defaults(func=command)


def _check_load(args: argparse.Namespace) -> None:
    if args.load is None:
        return
    problems = []
    if not 1 <= args.load <= 10_000_000:
        problems.append(f"--load: {args.load} is not between 1 and 10000000")
    shares = (args.duplicates, args.abandoned, args.rollbacks)
    if any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1:
        problems.append("--duplicates, --abandoned, --rollbacks: shares between 0 and 1, summing to at most 1")
    if not args.max_seconds > 0:
        problems.append("--max-seconds: must be positive")
    if problems:
        raise SourceError(problems)


def command(args: argparse.Namespace) -> int:
    suite = SUITES[args.dialect]
    if args.list:
        print(suite.table())
        return 0
    try:
        target = resolve(args.dialect, vars(args), args.target)
        _check_load(args)
    except SourceError as exc:
        for problem in exc.problems:
            print(f"certify: {problem}", file=sys.stderr)
        return 2
    cases = suite.select(args.cases)
    if not cases and args.load is None:
        print(f"certify: no {args.dialect} case matches {' '.join(args.cases)} (see --list)", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    try:
        report = asyncio.run(_certify(target, args, cases, console))
    except Unreachable as exc:
        print(f"certify: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("certify: interrupted; calls in flight may have reached the wallet", file=sys.stderr)
        return 130
    terminal(report, console)
    for path, render in ((args.json, to_json), (args.junit, to_junit), (args.html, to_html)):
        if not path:
            continue
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(render(report))
        except OSError as exc:
            print(f"certify: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return report.exit_code


async def _certify(target: Target, args: argparse.Namespace, cases: list[Any], console: Console) -> Report:
    def show(exchange: Exchange) -> None:
        console.print(Text(exchange.text(), style="dim"))

    connector = aiohttp.TCPConnector(limit=max(100, target.concurrency * 2))
    timeout = aiohttp.ClientTimeout(total=target.timeout)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        run = Run(
            target,
            WALLETS[target.dialect](target, http),
            show=show if args.verbose else None,
            abandon_wait=args.abandon_wait,
        )
        await run.preflight()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            if args.load is not None:
                task = progress.add_task(f"load: {args.load} rounds", total=args.load)
                plan = load.Plan(
                    args.load, args.duplicates, args.abandoned, args.rollbacks, args.max_seconds, args.seed
                )
                results = await load.play(run, plan, lambda: progress.advance(task))
            else:
                task = progress.add_task(f"certify {target.dialect}", total=len(cases))
                results = await run.run(
                    cases,
                    done=lambda _: progress.advance(task),
                    starting=lambda c: progress.update(task, description=c.id),
                )
    return Report(
        target.dialect,
        target.shown(),
        results,
        time.perf_counter() - started,
        reconcile=list(run.model.findings),
        mode="load" if args.load is not None else "cases",
        run_id=run.prefix,
    )
