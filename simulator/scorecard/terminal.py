"""The report in a terminal: a summary line and a table of findings (``python -m simulator report``).

Every cell is a rich ``Text`` (never markup: a transaction id ``[bold]x`` is shown as sent) with control
characters written visibly (``\\x1b``), so an id chosen by the client cannot move the cursor or clear the
screen."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator import output
from simulator.visible import terminal_text

STYLE = {"fail": ("FAIL", "bold red"), "warn": ("WARN", "yellow"), "info": ("ok", "green")}


def render(report: dict[str, Any], console: Console, *, show_passed: bool = False, fmt: str = "table") -> None:
    """The summary, then the findings as a table or (``fmt="plain"``, for CI logs) one line each."""
    s = report["summary"]
    verdict = Text("OK", style="bold green") if report["ok"] else Text("NOT OK", style="bold red")
    console.print(
        Text.assemble(
            "Scorecard: ",
            verdict,
            f"  {s['judged']} fault(s) judged, {s['passed']} passed; {s['failed']} failure(s), "
            f"{s['warnings']} warning(s)",
        )
    )
    counts = ", ".join(f"{v} {n}" for v, n in s["by_verdict"].items() if n)
    if counts:
        console.print(f"Verdicts: {counts}")
    note = report.get("journal", {}).get("note")
    if note:
        console.print(Text(terminal_text(note), style="yellow"))
    shown = [f for f in report["findings"] if show_passed or f["severity"] != "info"]
    if not shown:
        hidden = len(report["findings"])
        console.print(f"Nothing to report{f' ({hidden} passed; --all shows them)' if hidden else ''}.")
        return
    if fmt == "plain":
        output.rows(console, None, (_cells(f) for f in shown))
        return
    table = Table(show_lines=False, expand=console.is_terminal)
    for column, options in (
        ("", {"no_wrap": True}),
        ("Finding", {"no_wrap": True}),
        ("Player", {}),
        ("Transaction", {}),
        ("What happened", {"ratio": 1}),
        ("Requests", {}),
    ):
        table.add_column(column, **options)
    for f in shown:
        table.add_row(*_cells(f))
    output.show(console, table)


def _cells(f: dict[str, Any]) -> tuple[Text, Text, Text, Text, Text, str]:
    label, style = STYLE[f["severity"]]
    who = "/".join(str(p) for p in (f["dialect"], f["player"]) if p)
    return (
        Text(label, style=style),
        _cell(f["verdict"] or f["check"] or f["kind"]),
        _cell(who),
        _cell(f["transaction"] or ""),
        _cell(f["message"]),
        " ".join(f"#{seq}" for seq in f["requests"][:8]) + (" ..." if len(f["requests"]) > 8 else ""),
    )


def _cell(value: str) -> Text:
    return Text(terminal_text(str(value)))
