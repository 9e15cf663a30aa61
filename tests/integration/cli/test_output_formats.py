"""Readable in CI logs: when stdout is not a terminal (here a pipe, with COLUMNS=80 as in CI), ``certify`` and
``report`` never cut an id nor fold a message: one line per case or finding by default (plain), a table as
wide as its content with ``--format table``, the report itself with ``--format json``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Harness

pytestmark = pytest.mark.asyncio

FIZZY = ["--public-key", "demo-public-key", "--private-key", "demo-private-key", "--player", "cert-p1"]
FIZZY += ["--session", "cert-s1", "--currency", "EUR", "--concurrency", "5", "--abandon-wait", "0.5"]
CASES = ["--cases", "withdraw.*", "--cases", "idempotency.*"]
# every withdraw answers a long-winded timeout (and is applied): failures with long messages and findings
SLOW_WALLET = """\
name: long-messages
rules:
  - match: {dialect: fizzy, operation: withdraw}
    respond: {error: timeout, message: "the wallet timed out while it was thinking about the withdraw very hard"}
    apply: true
"""


async def run(*argv: str) -> tuple[int, str]:
    """``python -m simulator ARGV`` with stdout a pipe (not a terminal) and an 80-column environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def slow_wallet(h: Harness) -> None:
    status, body = await h.admin("PUT", "/_sim/scenario", text=SLOW_WALLET)
    assert status == 200, body


async def test_certify_writes_one_line_per_case_off_a_terminal(h: Harness, tmp_path: Path) -> None:
    await slow_wallet(h)
    report = tmp_path / "r.json"
    code, out = await run("certify", "fizzy", "--wallet-url", h.url, *FIZZY, *CASES, "--json", str(report))
    assert code == 1, out
    cases = json.loads(report.read_text())["cases"]
    assert any(len(c["message"]) > 80 for c in cases)  # the test means something
    lines = out.splitlines()
    for case in cases:
        pattern = rf"{case['status'].upper()}  {re.escape(case['id'])}  \d+ms(  {re.escape(case['message'])})?"
        assert any(re.fullmatch(pattern, line) for line in lines), (case, out)


async def test_certify_table_off_a_terminal_is_as_wide_as_its_content(h: Harness) -> None:
    await slow_wallet(h)
    code, out = await run("certify", "fizzy", "--wallet-url", h.url, *FIZZY, *CASES, "--format", "table")
    assert code == 1
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    ids = [row.split("│")[1].strip() for row in rows]
    assert "idempotency.same_id_other_amount" in ids and "withdraw.insufficient_funds" in ids, out
    long = next(r for r in rows if "withdraw.insufficient_funds" in r)
    assert '"ERROR_TIMEOUT", not "ERROR_TRANSACTION_INSUFFICIENT_FUNDS"' in long  # not folded onto more rows
    assert all(row.split("│")[1].strip() for row in rows if "│" in row)  # no continuation rows


async def test_certify_json_format_prints_the_report(h: Harness) -> None:
    code, out = await run(
        "certify", "fizzy", "--wallet-url", h.url, *FIZZY, "--cases", "balance.ok", "--format", "json"
    )
    assert code == 0, out
    assert [c["id"] for c in json.loads(out)["cases"]] == ["balance.ok"]


async def findings(h: Harness) -> list[dict[str, Any]]:
    await slow_wallet(h)
    for _ in range(2):
        answer = await h.fizzy.withdraw("p-1", 1)
        assert answer.status == 500
    status, body = await h.admin("GET", "/_sim/report")
    assert status == 200
    shown = [f for f in body["findings"] if f["severity"] != "info"]
    assert shown and all(len(f["message"]) > 80 for f in shown)
    return shown


async def test_report_writes_one_line_per_finding_off_a_terminal(h: Harness) -> None:
    shown = await findings(h)
    code, out = await run("report", "--url", h.url)
    assert code == 1
    lines = out.splitlines()
    for f in shown:
        assert any(line.startswith("FAIL  ") and f["message"] in line and f["transaction"] in line for line in lines)


async def test_report_table_off_a_terminal_cuts_nothing(h: Harness) -> None:
    shown = await findings(h)
    code, out = await run("report", "--url", h.url, "--format", "table")
    assert code == 1
    for f in shown:
        assert any(f["message"] in line and f["transaction"] in line for line in out.splitlines()), out
    code, out = await run("report", "--url", h.url, "--format", "json")
    assert json.loads(out)["ok"] is False
