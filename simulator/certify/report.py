"""Report writers: the terminal summary (rich), JSON, JUnit XML (shaped like pytest's junitxml, so CI
systems show one test per case) and one self-contained HTML page. All take the same :class:`Report`."""

from __future__ import annotations

import html
import platform
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator import jsonio, output
from simulator.certify.core import EXPLAINED, FAIL, INCONCLUSIVE, NOTE, PASS, SKIP, WARN, Result, shown
from simulator.visible import terminal_text, xml_safe

STYLE = {PASS: "green", FAIL: "bold red", WARN: "yellow", NOTE: "cyan", SKIP: "dim", INCONCLUSIVE: "magenta"}
SETUP = "setup"  # the one testcase of a run that could not start (exit 2)


@dataclass
class Report:
    dialect: str
    target: dict[str, Any]  # redacted
    results: list[Result]
    seconds: float
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    reconcile: list[str] = field(default_factory=list)
    mode: str = "cases"
    run_id: str = ""  # the prefix of every id the run sent
    could_not_start: bool = False  # exit 2: ``results`` is one failing ``setup`` case with the reason

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        """2 when the run could not start, 1 when a case failed; warnings, notes, skips and inconclusive
        cases never change it."""
        if self.could_not_start:
            return 2
        return 1 if self.counts()[FAIL] else 0

    def summary(self) -> dict[str, Any]:
        c = self.counts()
        return {
            "total": len(self.results),
            "passed": c[PASS],
            "failed": c[FAIL],
            "warnings": c[WARN],
            "notes": c[NOTE],
            "skipped": c[SKIP],
            "inconclusive": c[INCONCLUSIVE],
            "seconds": round(self.seconds, 3),
            "reconcile": self.reconcile,
            "exit_code": self.exit_code,
        }

    def line(self) -> str:
        s = self.summary()
        if self.could_not_start:
            return f"the run could not start: {self.results[0].message}" if self.results else "the run could not start"
        return (
            f"{s['passed']} passed, {s['failed']} failed, {s['warnings']} warning(s), {s['notes']} note(s), "
            f"{s['skipped']} skipped, {s['inconclusive']} inconclusive in {self.seconds:.1f}s"
        )


def setup_failure(
    dialect: str,
    target: dict[str, Any],
    reason: str,
    exchanges: list[Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Report:
    """The report of a run that could not start: one failing ``setup`` case carrying the reason and the
    exchange that shows it (request, answer status and body), so CI shows why instead of nothing."""
    result = Result(
        SETUP,
        FAIL,
        0.0,
        reason,
        hint="certify could not start: fix the settings, the credentials or the player, then run it again",
        exchanges=list(exchanges or []),
        details=dict(details or {}),
    )
    return Report(dialect, target, [result], 0.0, could_not_start=True)


def to_json(report: Report) -> str:
    data = {
        "dialect": report.dialect,
        "mode": report.mode,
        "run_id": report.run_id,
        "target": report.target,
        "started": report.started.isoformat(timespec="seconds"),
        "cases": [r.as_dict() for r in report.results],
        "summary": report.summary(),
    }
    return jsonio.pretty(data) + "\n"


def _setting(value: Any) -> str:
    """A target setting as text: strings as they are, anything else as JSON (``null``, ``true``, ``1.00``)."""
    return value if isinstance(value, str) else shown(value)


def _detail_text(result: Result, *, exchange: bool = True) -> str:
    lines = [result.message]
    if result.expected is not None or result.actual is not None:
        lines += [f"expected: {result.expected}", f"actual:   {result.actual}"]
    if result.hint:
        lines.append(f"hint: {result.hint}")
    lines += result.findings
    if "script" in result.details:  # explore mode: the shortest failing history, step by step
        lines += ["", "history:", result.details["script"]]
    if exchange and result.culprit is not None:
        lines += ["", "exchange:", result.culprit.text()]
    return "\n".join(lines)


def to_junit(report: Report) -> str:
    """One <testsuite> of one <testcase> per case: failures as <failure>, skips as <skipped>, warnings as a
    passing test with a ``verdict=warn`` property and the warning in <system-out> (pytest's own shape)."""
    c = report.counts()
    suite = ET.Element(
        "testsuite",
        name=f"certify.{report.dialect}",
        tests=str(len(report.results)),
        failures=str(c[FAIL]),
        errors="0",
        skipped=str(c[SKIP]),
        time=f"{report.seconds:.3f}",
        timestamp=report.started.isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run_id", value=report.run_id)
    for key, value in report.target.items():
        ET.SubElement(props, "property", name=key, value=_setting(value))
    for result in report.results:
        group, _, name = result.id.rpartition(".")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"certify.{report.dialect}.{group}" if group else f"certify.{report.dialect}",
            name=name,
            time=f"{result.ms / 1000:.3f}",
        )
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", name="verdict", value=result.status)
        ET.SubElement(case_props, "property", name="id", value=result.id)
        if result.status == FAIL:
            ET.SubElement(case, "failure", message=result.message).text = _detail_text(result)
        elif result.status == SKIP:
            ET.SubElement(case, "skipped", type="pytest.skip", message=result.message)
        elif result.status == INCONCLUSIVE:
            ET.SubElement(
                case, "skipped", type="inconclusive", message="inconclusive: " + result.message
            ).text = _detail_text(result)
        elif result.status == WARN:
            ET.SubElement(case, "system-out").text = "WARNING: " + _detail_text(result)
        elif result.status == NOTE:
            ET.SubElement(case, "system-out").text = "NOTE: " + _detail_text(result)
        elif result.message:
            ET.SubElement(case, "system-out").text = result.message
    root = ET.Element("testsuites", name="certify")
    root.append(suite)
    ET.indent(root)
    xml_safe(root)  # messages quote the wallet's answers: no character XML 1.0 forbids
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def terminal(report: Report, console: Console, fmt: str = "table") -> None:
    """The report for a person: a table (``fmt="table"``) or one line per case (``"plain"``, for CI logs)."""
    title = f"certify {report.dialect}: {report.target.get('wallet_url', '')}"
    if fmt == "plain":
        output.rows(console, title, ((r.status.upper(), r.id, f"{r.ms:.0f}ms", r.message) for r in report.results))
    else:
        table = Table(title=title, show_lines=False)
        table.add_column("case", no_wrap=True)
        table.add_column("verdict")
        table.add_column("ms", justify="right")
        table.add_column("message", overflow="fold")
        for r in report.results:
            table.add_row(
                Text(r.id), Text(r.status.upper(), style=STYLE[r.status]), f"{r.ms:.0f}", Text(terminal_text(r.message))
            )
        output.show(console, table)
    for r in report.results:
        if r.status not in EXPLAINED:
            continue
        console.rule(Text(f"{r.status.upper()} {r.id}", style=STYLE[r.status]))
        console.print(Text(terminal_text(_detail_text(r), keep="\n")))
    for r in report.results:
        if "latency" in r.details:
            output.show(console, _latency_table(r.details["latency"]))
    if report.reconcile:
        console.rule("balance reconciliation")
        for finding in report.reconcile:
            console.print(Text(terminal_text(finding), style="red"))
    c = report.counts()
    style = STYLE[FAIL] if c[FAIL] or report.could_not_start else (STYLE[WARN] if c[WARN] else STYLE[PASS])
    console.print(Text(report.line(), style=style))


def _latency_table(figures: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="latency per endpoint (ms)")
    for column in ("endpoint", "calls", "p50", "p99", "max"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for path, f in figures.items():
        table.add_row(path, str(f["calls"]), f"{f['p50_ms']:.1f}", f"{f['p99_ms']:.1f}", f"{f['max_ms']:.1f}")
    return table


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}.warn{color:#a06000}.skip{color:#888}
.note{color:#00638a}.inconclusive{color:#7a2f8f}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap}details{margin:.5em 0}
.summary{font-size:1.1em;margin:1em 0}
"""


def to_html(report: Report) -> str:
    """One page, no external assets: the summary, the case table, and each failure or warning unfolded."""
    esc = html.escape
    rows = "".join(
        f"<tr><td><code>{esc(r.id)}</code></td><td class='{r.status}'>{r.status.upper()}</td>"
        f"<td>{r.ms:.0f}</td><td>{esc(r.message)}</td></tr>"
        for r in report.results
    )
    details = []
    for r in report.results:
        if r.status not in EXPLAINED:
            continue
        culprit = r.culprit
        exchanges = "".join(
            f"<details{' open' if x is culprit else ''}><summary>{esc(x.label)}</summary><pre>{esc(x.text())}</pre>"
            "</details>"
            for x in r.exchanges
        )
        details.append(
            f"<details open><summary class='{r.status}'>{r.status.upper()} <code>{esc(r.id)}</code></summary>"
            f"<pre>{esc(_detail_text(r, exchange=False))}</pre>"
            f"<p>Exchanges ({len(r.exchanges)}; the one the verdict is about is open):</p>{exchanges}</details>"
        )
    target = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_setting(v))}</td></tr>" for k, v in report.target.items())
    reconcile = "".join(f"<li>{esc(f)}</li>" for f in report.reconcile)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>certify {esc(report.dialect)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Wallet certification: {esc(report.dialect)}</h1>"
        f"<p class='summary'>{esc(report.line())} &middot; exit code {report.exit_code} &middot; "
        f"{esc(report.started.isoformat(timespec='seconds'))} &middot; Python {esc(platform.python_version())}</p>"
        f"<h2>Target</h2><table>{target}<tr><th>ids sent</th><td>{esc(report.run_id)}-*</td></tr></table>"
        f"<h2>Cases</h2><table><tr><th>case</th><th>verdict</th><th>ms</th><th>message</th></tr>{rows}</table>"
        + (f"<h2>Balance reconciliation</h2><ul>{reconcile}</ul>" if reconcile else "")
        + (f"<h2>Failures, warnings, notes and inconclusive cases</h2>{''.join(details)}" if details else "")
        + "</body></html>\n"
    )
