"""How the command line writes its reports (``certify``, ``report``): ``table`` on a terminal, ``plain`` (one
line per case or finding) elsewhere, or ``json``; ``--format`` chooses.

A CI log is not a terminal and has no width: rich would assume 80 columns, cut case ids and fold a message
into a column of fragments. So off a terminal a table is drawn as wide as its content needs, and the plain
format writes every row on one line, whatever its length.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from simulator.visible import terminal_text

FORMATS = ("plain", "table", "json")
WIDEST = 100_000  # columns a table may take off a terminal (nobody reads one that wide, but nothing is cut)
SEPARATOR = "  "


def choose(fmt: str | None, stream: TextIO | None = None) -> str:
    """The format asked for, else ``table`` on a terminal and ``plain`` anywhere else (a pipe, a CI log)."""
    if fmt:
        return fmt
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "table" if isatty is not None and isatty() else "plain"


def console(stream: TextIO | None = None) -> Console:
    """A console for reports: no highlighting of numbers and names; off a terminal, text is never wrapped."""
    out = Console(file=stream, highlight=False)
    if not out.is_terminal:
        out.soft_wrap = True
    return out


def show(out: Console, table: Table) -> None:
    """Print a table: on a terminal at its width; elsewhere as wide as the content, so nothing is cut or folded."""
    if out.is_terminal:
        out.print(table)
        return
    needed = Measurement.get(out, out.options.update(max_width=WIDEST), table).maximum
    before, soft = out.width, out.soft_wrap
    out.width, out.soft_wrap = max(needed, 1), False
    try:
        out.print(table)
    finally:
        out.width, out.soft_wrap = before, soft


def line(cells: Sequence[Any]) -> str:
    """One row as one line: cells separated by two spaces, a cell's own line breaks shown as `` | ``, control
    characters shown as ``\\x1b`` rather than obeyed."""
    texts = (cell.plain if isinstance(cell, Text) else str(cell) for cell in cells)
    return SEPARATOR.join(" | ".join(terminal_text(part) for part in t.splitlines()) for t in texts if t)


def rows(out: Console, title: str | None, lines: Iterable[Sequence[Any]]) -> None:
    """The plain format: an optional title, then each row on its own line (``soft_wrap``: never folded)."""
    if title:
        out.print(title, soft_wrap=True, markup=False)
    for cells in lines:
        out.print(line(cells), soft_wrap=True, markup=False)
