"""``certify --explore``: random histories against a wallet, shrunk to the shortest that fails, replayable.

Wallets from ``tests/explore_wallets.py`` served on loopback: the correct one passes, a lost-update race
and a float truncation are each found and shrunk to one step; the simulator's own wallets pass too. Every
run is bounded (a few histories of a few steps) and seeded, so it is the same run every time."""

from __future__ import annotations

import asyncio
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simulator.certify import explore
from simulator.cli import main
from tests import explore_wallets
from tests.conftest import ServeApp, Start

FIZZY = ["--public-key", "demo-public-key", "--private-key", "demo-private-key", "--player", "x-p1"]
FIZZY += ["--session", "x-s1", "--currency", "EUR"]
AMB = ["--agent", "demo", "--username", "x-m1", "--currency", "THB"]
CREDENTIALS = {"fizzy": FIZZY, "ambslot": AMB}
LEAN = ["--abandon-wait", "0.3", "--timeout", "10", "--max-seconds", "120", "--seed", "1"]
DIALECTS = ["fizzy", "ambslot"]


async def certify(dialect: str, url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run the real command (in a thread: it has its own event loop) and read its JSON report."""
    report = tmp_path / f"{dialect}.json"
    report.unlink(missing_ok=True)
    argv = ["certify", dialect, "--wallet-url", url, *CREDENTIALS[dialect], *LEAN, "--json", str(report), *extra]
    code = await asyncio.to_thread(main, argv)
    return code, json.loads(report.read_text()) if report.exists() else {}


def only(report: dict[str, Any]) -> dict[str, Any]:
    (case,) = report["cases"]
    assert isinstance(case, dict)
    return case


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_float_truncation_is_found_shrunk_and_replayed(
    serve_app: ServeApp, tmp_path: Path, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await serve_app(explore_wallets.app(frozenset({"truncation"})))
    junit, page = tmp_path / "explore.xml", tmp_path / "explore.html"
    flags = ["--explore", "10", "--explore-steps", "5", "--html", str(page)]
    code, report = await certify(dialect, url, tmp_path, *flags, "--junit", str(junit))
    case = only(report)
    assert code == 1 and report["mode"] == "explore"
    assert case["id"] == "explore.histories" and case["status"] == "fail"
    history = case["details"]["history"]
    assert history["steps"] == [{"do": "debit", "ref": "d1", "amount": "0.29"}]  # int(float(0.29) * 100) == 28
    assert "step 1:" in case["message"] and "would answer" in case["message"]
    assert "failed again when replayed" in case["message"]
    out = capsys.readouterr().out
    assert "history:" in out and "1. " in out and " d1 of 0.29" in out and "--replay" in out

    written = Path(case["details"]["history_file"])  # default: next to the reports
    assert written.parent == tmp_path and json.loads(await asyncio.to_thread(written.read_text)) == history
    failure = ET.parse(junit).getroot().find(".//failure")
    assert failure is not None and "history:" in (failure.text or "") and "d1 of 0.29" in (failure.text or "")
    html = await asyncio.to_thread(page.read_text)
    assert "history:" in html and "d1 of 0.29" in html

    code, report = await certify(dialect, url, tmp_path, "--replay", str(written))
    replay = only(report)
    assert code == 1 and replay["id"] == "explore.replay" and replay["status"] == "fail"
    assert replay["details"]["history"]["steps"] == history["steps"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_lost_update_race_is_found_and_shrunk_to_two_calls_at_once(
    serve_app: ServeApp, tmp_path: Path, dialect: str
) -> None:
    url = await serve_app(explore_wallets.app(frozenset({"lost_update"})))
    out = tmp_path / "race.json"
    code, report = await certify(
        dialect, url, tmp_path, "--explore", "20", "--explore-steps", "5", "--history-out", str(out)
    )
    case = only(report)
    assert code == 1 and case["status"] == "fail", case["message"]
    (step,) = case["details"]["history"]["steps"]
    assert len(step["together"]) == 2, step
    assert json.loads(out.read_text())["steps"] == [step]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_correct_wallet_gives_no_failure(serve_app: ServeApp, tmp_path: Path, dialect: str) -> None:
    url = await serve_app(explore_wallets.app())
    code, report = await certify(dialect, url, tmp_path, "--explore", "15", "--explore-steps", "6")
    case = only(report)
    assert code == 0 and case["status"] == "pass", case
    assert case["details"]["explore"]["histories"] >= 15 and "exact, idempotent wallet" in case["message"]
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("explore-*.json")))  # only for a failure


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_simulators_own_wallet_gives_no_failure(start: Start, tmp_path: Path, dialect: str) -> None:
    h = await start()
    code, report = await certify(dialect, h.url, tmp_path, "--explore", "10", "--explore-steps", "6")
    assert code == 0 and only(report)["status"] == "pass", only(report)
    assert (await h.admin("GET", "/_sim/invariants"))[0] == 200


def test_bad_flags_and_a_bad_replay_file_exit_2_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "history.json"
    steps = [
        {"do": "spend", "ref": "d1", "amount": "1"},
        {"do": "debit", "ref": "d2", "amount": "-3"},
        {"together": []},
    ]
    bad.write_text(json.dumps({"format": explore.FORMAT, "dialect": "fizzy", "steps": steps}))
    argv = ["certify", "fizzy", "--wallet-url", "http://127.0.0.1:1", *FIZZY]
    assert main([*argv, "--replay", str(bad), "--explore-steps", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "certify: --explore-steps: 0 is not between 1 and 100",
        f"certify: {bad}: step 1: do: 'spend' is not debit, credit or undo",
        f"certify: {bad}: step 2: amount: '-3' is not a positive amount",
        f"certify: {bad}: step 3: together: a list of 2 to 10 calls",
    ]
    assert main([*argv, "--replay", str(bad).replace("history", "nothing")]) == 2
    assert "cannot read" in capsys.readouterr().err
    amb = ["certify", "ambslot", "--wallet-url", "http://127.0.0.1:1", *AMB]
    assert main([*amb, "--explore", "5", "--load", "3"]) == 2
    assert "--load cannot be combined with --explore" in capsys.readouterr().err


def test_explore_without_hypothesis_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis now raises ImportError
    assert main(["certify", "fizzy", "--wallet-url", "http://127.0.0.1:1", *FIZZY, "--explore", "5"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "certify: --explore needs Hypothesis, which is not installed: pip install 'wallet-simulator[explore]'\n"
    )


def test_the_documented_history_file_replays(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "explore.md").read_text()
    block = docs.split("```json\n", 1)[1].split("\n```", 1)[0]
    path = tmp_path / "documented.json"
    path.write_text(block)
    (step,) = explore.read_history(str(path), "fizzy")
    assert [c.ref for c in step.calls] == ["d1", "d2"] and not step.abandon
    for flag in ("--explore N", "--explore-steps K", "--replay FILE", "--history-out FILE", "--max-seconds T"):
        assert f"`{flag}`" in docs


async def test_max_seconds_bounds_the_exploration(serve_app: ServeApp, tmp_path: Path) -> None:
    url = await serve_app(explore_wallets.app())
    code, report = await certify("fizzy", url, tmp_path, "--explore", "100000", "--max-seconds", "1")
    case = only(report)
    assert code == 0 and case["status"] == "pass" and "(stopped by --max-seconds)" in case["message"]
    assert case["details"]["explore"]["seconds"] < 30  # the remaining examples end at once


async def test_a_history_file_that_cannot_be_written_is_said_not_a_crash(serve_app: ServeApp, tmp_path: Path) -> None:
    url = await serve_app(explore_wallets.app(frozenset({"truncation"})))
    blocker = tmp_path / "not-a-folder"
    await asyncio.to_thread(blocker.write_text, "")
    flags = ["--explore", "5", "--explore-steps", "3", "--history-out", str(blocker / "h.json")]
    code, report = await certify("fizzy", url, tmp_path, *flags)
    case = only(report)
    assert code == 1 and case["status"] == "fail" and "history_file" not in case["details"]
    assert case["details"]["history_file_error"].startswith(f"cannot write {blocker / 'h.json'}")
    assert case["details"]["history"]["steps"]  # the report still carries it


async def test_a_wallet_that_accepts_nothing_is_skipped_not_passed(serve_app: ServeApp, tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.path.endswith("/balance"):
            return web.json_response({"balance": 1000, "currency": "EUR"})
        return web.json_response({"code": "ERROR_BAD_REQUEST", "description": "no"}, status=400)

    application = web.Application()
    application.router.add_post("/wallet/{name}", refuse)
    url = await serve_app(application)
    code, report = await certify("fizzy", url, tmp_path, "--explore", "5", "--explore-steps", "3")
    case = only(report)
    assert code == 0 and case["status"] == "skip" and "nothing was explored" in case["message"]
