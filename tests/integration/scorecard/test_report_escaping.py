"""Ids with control characters in the reports (issue 19, item 7): a client chooses its transaction ids, a
wallet its answers. The scorecard's and certify's JUnit XML stay valid XML 1.0, ``report --format junit``
parses what it prints, and terminal tables show control characters as ``\\x1b`` instead of obeying them."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest

from simulator import cli
from simulator.certify.core import FAIL, Result
from simulator.certify.report import Report, to_junit
from simulator.scorecard import junit
from simulator.visible import terminal_text, xml_text
from tests.conftest import Start

EVIL = "ev\x1b[2Jil\x00\x07\x7f\ufffe\u202e-id"
SHOWN = "ev\\x1b[2Jil\\x00\\x07\\x7f\\ufffe\\u202e-id"  # what a terminal shows


async def test_cli_report_with_a_control_character_id_stays_valid_and_visible(
    start: Start, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich folds narrower tables
    h = await start()
    rules = "name: lost\nrules:\n  - {match: {dialect: fizzy, operation: withdraw}, fault: reset, apply: true}\n"
    assert (await h.admin("PUT", "/_sim/scenario", text=rules))[0] == 200
    with pytest.raises(aiohttp.ClientOSError):
        await h.fizzy.withdraw("p-1", 10, txn=EVIL, round_id="round\x1b[31m")
    status, xml = await h.admin("GET", "/_sim/report?format=junit")
    assert status == 200 and isinstance(xml, str)
    case = ET.fromstring(xml).find(".//testcase")  # parses: nothing XML 1.0 forbids
    assert case is not None and "\\x1b[2Jil\\x00\\x07" in (case.get("name") or "")

    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url, "--format", "junit"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and ET.fromstring(captured.out).get("failures") == "1"

    assert await asyncio.to_thread(cli.main, ["report", "--url", h.url]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out and "\u202e" not in out
    assert SHOWN in out and "(round round\\x1b[31m)" in out


def _finding(**extra: Any) -> dict[str, Any]:
    return {
        "id": "fault-1",
        "kind": "fault",
        "verdict": "abandoned",
        "check": None,
        "severity": "fail",
        "dialect": "fizzy",
        "tenant": "pk\x01",
        "player": "p\x1b",
        "transaction": EVIL,
        "operation": "withdraw",
        "message": f"withdraw {EVIL} got a reset",
        "requests": [1],
        **extra,
    }


def test_the_junit_module_writes_valid_xml_for_any_id() -> None:
    report = {"findings": [_finding()], "summary": {"failed": 1}, "generated": "now"}
    root = ET.fromstring(junit.render(report))
    case = root.find(".//testcase")
    assert case is not None and case.get("classname") == "scorecard.fizzy.pk\\x01.p\\x1b"
    failure = case.find("failure")
    assert failure is not None and SHOWN.replace("\\x7f", "\x7f").replace("\\u202e", "\u202e") in (
        failure.get("message") or ""
    )  # XML allows DEL and U+202E; only what it forbids is escaped


def test_certify_junit_writes_valid_xml_for_a_hostile_answer() -> None:
    result = Result("withdraw.ok", FAIL, 1.0, message="the wallet said \x00\x1b[31m", hint="h\x0b")
    xml = to_junit(Report("fizzy", {"wallet_url": "http://w\x1b"}, [result], 0.1))
    failure = ET.fromstring(xml).find(".//failure")
    assert failure is not None and failure.get("message") == "the wallet said \\x00\\x1b[31m"


def test_the_helpers() -> None:
    assert xml_text("a\tb\nc\rd\x00\x1f\ud800\uffff") == "a\tb\nc\rd\\x00\\x1f\\ud800\\uffff"
    assert terminal_text(EVIL) == SHOWN
    assert terminal_text("line 1\nline\x1b 2", keep="\n") == "line 1\nline\\x1b 2"
    assert terminal_text("\x85 \u200b") == "\\x85 \\u200b"
