"""The ``certify`` command once its flags are parsed: the run with a progress bar, the reports, the exit code.

Exit codes: 0 nothing failed (warnings, notes, skips and inconclusive cases allowed), 1 at least one case
failed, 2 the run could not happen (bad target settings, wallet unreachable or refusing the first balance
call), always as one clear line per problem, and the reports asked for (a failing ``setup`` testcase).
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

from simulator import output
from simulator.certify import ambslot, explore, fizzy, load
from simulator.certify.core import Exchange, Suite, Unreachable
from simulator.certify.report import Report, setup_failure, terminal, to_html, to_json, to_junit
from simulator.certify.runner import Run
from simulator.certify.target import Target, resolve
from simulator.certify.wire import WALLETS
from simulator.errors import SourceError
from simulator.visible import terminal_text

SUITES: dict[str, Suite] = {"fizzy": fizzy.suite, "ambslot": ambslot.suite}


def _check_load(args: argparse.Namespace) -> None:
    problems = []
    if not args.max_seconds > 0:
        problems.append("--max-seconds: must be positive")
    if args.load is not None:
        if not 1 <= args.load <= 10_000_000:
            problems.append(f"--load: {args.load} is not between 1 and 10000000")
        shares = (args.duplicates, args.abandoned, args.rollbacks)
        if any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1:
            problems.append("--duplicates, --abandoned, --rollbacks: shares between 0 and 1, summing to at most 1")
    if problems:
        raise SourceError(problems)


def _write(report: Report, args: argparse.Namespace) -> bool:
    """Write the --json, --junit and --html reports that were asked for; False if one could not be written."""
    ok = True
    for path, render in ((args.json, to_json), (args.junit, to_junit), (args.html, to_html)):
        if not path:
            continue
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(render(report))
        except OSError as exc:
            print(f"certify: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            ok = False
    return ok


def _cannot_start(args: argparse.Namespace, problems: list[str], target: Target | None, exc: Any = None) -> int:
    """Exit 2: one line per problem on stderr, and the reports with one failing ``setup`` case."""
    for problem in problems:
        print(f"certify: {problem}", file=sys.stderr)
    exchanges = [exc.exchange] if exc is not None and exc.exchange is not None else []
    details = exc.details if exc is not None else {}
    shown_target = target.shown() if target is not None else {}
    _write(setup_failure(args.dialect, shown_target, "; ".join(problems), exchanges, details), args)
    return 2


def run_command(args: argparse.Namespace) -> int:
    suite = SUITES[args.dialect]
    if args.list:
        print(suite.table())
        return 0
    try:
        target = resolve(args.dialect, vars(args), args.target)
        _check_load(args)
        if wrong := explore.problems(args):
            raise SourceError(wrong)
    except SourceError as exc:
        return _cannot_start(args, list(exc.problems), None)
    cases = suite.select(args.cases)
    if not cases and args.load is None:
        return _cannot_start(args, [f"no {args.dialect} case matches {' '.join(args.cases)} (see --list)"], target)
    fmt = output.choose(args.format)
    console = output.console(sys.stderr if fmt == "json" else None)  # json: stdout holds only the report
    try:
        report = asyncio.run(_certify(target, args, cases, console))
    except Unreachable as exc:
        return _cannot_start(args, [exc.message], target, exc)
    except KeyboardInterrupt:
        print("certify: interrupted; calls in flight may have reached the wallet", file=sys.stderr)
        return 130
    if fmt == "json":
        sys.stdout.write(to_json(report))
    else:
        terminal(report, console, fmt)
    if not _write(report, args):
        return 2
    return report.exit_code


async def _certify(target: Target, args: argparse.Namespace, cases: list[Any], console: Console) -> Report:
    def show(exchange: Exchange) -> None:
        console.print(Text(terminal_text(exchange.text(), keep="\n"), style="dim"))

    connector = aiohttp.TCPConnector(limit=max(100, target.concurrency * 2))
    timeout = aiohttp.ClientTimeout(total=target.timeout)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        run = Run(
            target,
            WALLETS[target.dialect](target, http),
            show=show if args.verbose else None,
            abandon_wait=args.abandon_wait,
            # load mode bounds its rounds itself (then reconciles): the runner's own budget is for the cases
            max_seconds=args.max_seconds if args.load is None else None,
        )
        try:
            async with asyncio.timeout(args.max_seconds):
                await run.preflight()
        except TimeoutError:
            raise Unreachable(f"the first balance call took longer than --max-seconds {args.max_seconds:g}") from None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            if args.explore is not None or args.replay:
                task = progress.add_task("explore", total=args.explore or 1)
                results = await explore.play(run, args, lambda: progress.advance(task))
            elif args.load is not None:
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
        mode="explore" if args.explore is not None or args.replay else "load" if args.load is not None else "cases",
        run_id=run.prefix,
    )
