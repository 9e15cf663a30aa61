"""``python -m simulator certify``: against the simulator's own wallets (every case passes) and against a
test wallet with switchable defects (each caught by the case that names it, and by no other)."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simulator.certify import ambslot, fizzy
from simulator.certify.core import Model
from simulator.certify.flows import percentile
from simulator.certify.target import resolve
from simulator.cli import main
from simulator.errors import SourceError
from simulator.server.serve import bind
from tests import defect_wallet
from tests.conftest import Start

FIZZY = ["--public-key", "demo-public-key", "--private-key", "demo-private-key", "--player", "cert-p1"]
FIZZY += ["--session", "cert-s1", "--currency", "EUR"]
AMB = ["--agent", "demo", "--username", "cert-m1", "--currency", "THB"]
LEAN = ["--concurrency", "5", "--latency-budget", "30", "--abandon-wait", "0.5", "--timeout", "10"]
CREDENTIALS = {"fizzy": FIZZY, "ambslot": AMB}
BLOCKED = """
name: certify
players:
  - {dialect: fizzy, playerId: blocked-1, currency: EUR, blocked: true}
"""

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def _serve(application: web.Application) -> str:
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        sock = bind("127.0.0.1", 0)
        await web.SockSite(runner, sock).start()
        runners.append(runner)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield _serve
    for runner in runners:
        await runner.cleanup()


async def certify(dialect: str, url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run the real command (in a thread: it has its own event loop) and read its JSON report."""
    report = tmp_path / f"{dialect}.json"
    argv = ["certify", dialect, "--wallet-url", url, *CREDENTIALS[dialect], *LEAN, "--json", str(report), *extra]
    code = await asyncio.to_thread(main, argv)
    return code, json.loads(report.read_text()) if report.exists() else {}


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    """Every case that did not pass (or skip), with its status."""
    return {c["id"]: c["status"] for c in report["cases"] if c["status"] not in ("pass", "skip")}


@pytest.mark.parametrize("dialect", ["fizzy", "ambslot"])
async def test_the_simulators_own_wallet_passes_every_case(start: Start, tmp_path: Path, dialect: str) -> None:
    h = await start(scenario=BLOCKED)
    extra = ["--blocked-player", "blocked-1"] if dialect == "fizzy" else []
    code, report = await certify(dialect, h.url, tmp_path, *extra)
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    suite = {"fizzy": fizzy.suite, "ambslot": ambslot.suite}[dialect]
    assert list(statuses) == [c.id for c in suite.cases]
    assert verdicts(report) == {}, [c for c in report["cases"] if c["status"] != "pass"]
    assert set(statuses.values()) == {"pass"}
    assert code == 0
    assert report["summary"]["reconcile"] == []
    assert report["run_id"].startswith("cert-")
    assert (await h.admin("GET", "/_sim/invariants"))[0] == 200


FIZZY_DEFECTS: dict[str, dict[str, str]] = {
    "": {},
    "auth": {
        "auth.missing_signature": "fail",
        "auth.wrong_signature": "fail",
        "auth.unknown_public_key": "fail",
        "auth.body_tampered": "fail",
    },
    "repeats": {
        "idempotency.withdraw_repeat": "fail",
        "idempotency.deposit_repeat": "fail",
        "idempotency.rollback_repeat": "fail",
        "idempotency.same_id_other_amount": "fail",
        "concurrency.same_withdraw": "fail",
        "timeout.retry_withdraw": "fail",
    },
    "race": {"concurrency.same_withdraw": "fail", "concurrency.overdraw": "fail"},
    "floats": {"precision.cents": "fail"},
    "strict": {"future.unknown_fields": "warn"},
    "slow": {"latency.budget": "warn"},
    "late": {"rollback.late_withdraw": "fail"},
    "choices": {  # allowed by the document: warnings only
        "idempotency.withdraw_repeat": "warn",
        "idempotency.deposit_repeat": "warn",
        "idempotency.rollback_repeat": "warn",
        "rollback.unknown_withdraw": "warn",
        "rollback.late_withdraw": "warn",
        "timeout.retry_withdraw": "warn",
    },
}
AMB_DEFECTS: dict[str, dict[str, str]] = {
    "": {},
    "auth": {"auth.unknown_agent": "fail"},
    "repeats": {
        "idempotency.bet_repeat": "fail",
        "idempotency.payout_repeat": "fail",
        "idempotency.cancel_repeat": "fail",
        "idempotency.same_id_other_amount": "fail",
        "concurrency.same_bet": "fail",
        "timeout.retry_bet": "fail",
    },
    "race": {"concurrency.same_bet": "fail", "concurrency.overdraw": "fail"},
    "floats": {"precision.cents": "fail"},
    "strict": {"future.unknown_fields": "warn"},
    "slow": {"latency.budget": "warn"},
    "late": {"cancel.late_bet": "fail"},
    "choices": {  # allowed by the document: warnings only
        "idempotency.bet_repeat": "warn",
        "idempotency.payout_repeat": "warn",
        "idempotency.cancel_repeat": "warn",
        "cancel.unknown_round": "warn",
        "cancel.late_bet": "warn",
        "timeout.retry_bet": "warn",
    },
}
CASES = [("fizzy", d, e) for d, e in FIZZY_DEFECTS.items()] + [("ambslot", d, e) for d, e in AMB_DEFECTS.items()]


@pytest.mark.parametrize(("dialect", "defect", "expected"), CASES, ids=[f"{c[0]}-{c[1] or 'none'}" for c in CASES])
async def test_each_defect_is_caught_by_its_case_and_no_other(
    serve_app: Serve, tmp_path: Path, dialect: str, defect: str, expected: dict[str, str]
) -> None:
    url = await serve_app(defect_wallet.app(frozenset([defect] if defect else [])))
    extra = ["--latency-budget", "0.2"] if defect == "slow" else []
    code, report = await certify(dialect, url, tmp_path, *extra)
    assert verdicts(report) == expected
    assert code == (1 if "fail" in expected.values() else 0)
    failed = [c for c in report["cases"] if c["status"] in ("fail", "warn")]
    for case in failed:  # every verdict an integrator can act on
        assert case["message"] and case["hint"]
        assert case["exchanges"] or case["id"] == "latency.budget"  # which judges timings, not one exchange


async def test_a_failure_shows_expected_actual_the_exchange_and_a_hint(
    serve_app: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"repeats"})))
    junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
    code, report = await certify(
        "fizzy", url, tmp_path, "--cases", "idempotency.withdraw_*", "--junit", str(junit), "--html", str(page)
    )
    assert code == 1
    (case,) = report["cases"]
    assert case["expected"] == "999.00" and case["actual"] == "998.00"
    assert "reconcile.idempotency.withdraw_repeat" in case["message"]
    assert case["findings"] and report["summary"]["reconcile"] == case["findings"]
    out = capsys.readouterr().out
    assert "FAIL idempotency.withdraw_repeat" in out and "hint: store transactionId" in out
    assert "1 failed" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "1"
    testcase = suite.find("testcase")
    assert testcase is not None and testcase.get("classname") == "certify.fizzy.idempotency"
    assert testcase.get("name") == "withdraw_repeat" and testcase.find("failure") is not None
    html = page.read_text()
    assert "idempotency.withdraw_repeat" in html and "<script" not in html and "<link" not in html


async def test_verbose_shows_every_exchange_with_secrets_redacted(
    start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = await start()
    code, _ = await certify("fizzy", h.url, tmp_path, "--cases", "withdraw.ok", "-v")
    out = capsys.readouterr().out
    assert code == 0
    assert "--> POST" in out and "/wallet/withdraw" in out and '"balance"' in out
    assert "Signature: " in out and "(redacted)" in out
    assert "demo-private-key" not in out
    assert "<redacted>" in (tmp_path / "fizzy.json").read_text()


async def test_warnings_and_skips_do_not_fail_the_run(
    serve_app: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"strict"})))
    code, report = await certify("fizzy", url, tmp_path, "--cases", "future.*", "--cases", "withdraw.blocked*")
    assert code == 0
    assert {c["id"]: c["status"] for c in report["cases"]} == {
        "future.unknown_fields": "warn",
        "withdraw.blocked_player": "skip",
    }
    warned = report["cases"][0]
    assert warned["exchanges"][warned["focus"]]["label"] == "balance with unknown extra fields"
    assert "exchange:\n--> POST" in capsys.readouterr().out


async def test_timeout_retry_abandons_the_call_then_retries_the_same_id(start: Start, tmp_path: Path) -> None:
    h = await start()
    code, report = await certify("fizzy", h.url, tmp_path, "--cases", "timeout.retry_withdraw")
    assert code == 0, report
    seen = Counter(e.transaction for e in h.sim.journal.query(dialect="fizzy", operation="withdraw"))
    (txn, count), *_ = seen.most_common()
    assert count == 2  # the abandoned call reached the wallet, and its retry carried the same id
    assert txn is not None and h.sim.ledger.find("fizzy", "demo-public-key", txn) is not None


def test_an_unreachable_wallet_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    code = main(["certify", "ambslot", "--wallet-url", f"http://127.0.0.1:{port}", *AMB])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"certify: cannot reach the wallet at http://127.0.0.1:{port}")
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_a_wallet_refusing_our_credentials_exits_2(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    h = await start()
    argv = ["certify", "fizzy", "--wallet-url", h.url, *FIZZY, "--private-key", "not-the-key"]
    code = await asyncio.to_thread(main, argv)
    err = capsys.readouterr().err
    assert code == 2 and "refused the first balance call" in err and "ERROR_INVALID_SIGNATURE" in err


def test_a_bad_target_file_exits_2_with_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target.yaml"
    target.write_text("wallet_url: ftp://nope\nagent: demo\nusername: m1\ncurrency: THB\nconcurency: 3\n")
    assert main(["certify", "ambslot", "--target", str(target)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"certify: {target}:1: wallet_url: 'ftp://nope' is not valid: an http:// or https:// URL",
        f"certify: {target}:5: concurency: unknown key 'concurency' (did you mean 'concurrency'?) (allowed: agent, "
        "amount, concurrency, currency, dialect, game, latency_budget, timeout, username, wallet_url)",
    ]


def test_missing_settings_and_bad_flags_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certify", "fizzy", "--wallet-url", "http://127.0.0.1:1", "--amount", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "certify: --amount: '0.001' is not a positive amount with at most 2 decimal places" in err
    assert (
        "certify: missing private_key: give --private-key, CERTIFY_PRIVATE_KEY or private_key: in the --target" in err
    )


def test_flags_beat_environment_beats_file(tmp_path: Path) -> None:
    target = tmp_path / "t.yaml"
    target.write_text(
        "wallet_url: http://file:1\npublic_key: file-pk\nprivate_key: file-secret\nplayer: file-p\n"
        "session: s\ncurrency: EUR\namount: '2.50'\n"
    )
    env = {"CERTIFY_PRIVATE_KEY": "env-secret", "CERTIFY_PLAYER": "env-p"}
    t = resolve("fizzy", {"player": "flag-p"}, str(target), env)
    assert (t.player, t.private_key, t.public_key, str(t.amount)) == ("flag-p", "env-secret", "file-pk", "2.50")
    assert t.shown()["private_key"] == "<redacted>"
    with pytest.raises(SourceError) as info:
        resolve("fizzy", {}, str(target), {"CERTIFY_CONCURRENCY": "1"})
    assert info.value.problems == ["CERTIFY_CONCURRENCY: 1 is not between 2 and 500"]


@pytest.mark.parametrize("dialect", ["fizzy", "ambslot"])
async def test_load_mode_plays_rounds_and_reconciles(
    start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str], dialect: str
) -> None:
    h = await start()
    load = ["--load", "40", "--duplicates", "0.3", "--abandoned", "0.2", "--rollbacks", "0.2", "--seed", "7"]
    code, report = await certify(dialect, h.url, tmp_path, *load)
    assert code == 0, report
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert statuses == {"load.rounds": "pass", "reconcile.final": "pass", "latency.budget": "pass"}
    assert "40 rounds" in report["cases"][0]["message"] and "calls/s" in report["cases"][0]["message"]
    assert "p99" in report["cases"][2]["message"]


async def test_load_mode_catches_double_applied_duplicates(serve_app: Serve, tmp_path: Path) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"repeats"})))
    mix = ["--duplicates", "1", "--abandoned", "0", "--rollbacks", "0"]
    code, report = await certify("ambslot", url, tmp_path, "--load", "10", *mix)
    assert code == 1
    final = next(c for c in report["cases"] if c["id"] == "reconcile.final")
    assert final["status"] == "fail" and "the model expects" in final["message"]


def test_case_ids_are_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "certify.md").read_text()
    for suite in (fizzy.suite, ambslot.suite):
        assert suite.table() in docs, f"docs/certify.md is out of date: paste `certify {suite.dialect} --list`"


def test_list_and_case_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certify", "ambslot", "--list"]) == 0
    assert "| `cancel.late_bet` |" in capsys.readouterr().out
    assert main(["certify", "ambslot", "--wallet-url", "http://127.0.0.1:1", *AMB, "--cases", "nothing.*"]) == 2
    assert "no ambslot case matches nothing.*" in capsys.readouterr().err


def test_the_model_reports_a_difference_once_then_adopts_the_wallets_figure() -> None:
    model = Model(Decimal("100.00"))
    model.debit(Decimal("1.00"))
    assert model.compare(Decimal("99"), "answer", "withdraw.ok") is None  # 99 == 99.00
    finding = model.compare(Decimal("98"), "answer", "idempotency.withdraw_repeat")
    assert finding == "reconcile.idempotency.withdraw_repeat: answer: the wallet says 98, the model expects 99.00"
    assert model.balance == Decimal("98") and model.findings == [finding]
    assert model.compare("98", "a string", "balance.ok") is not None  # only numbers reconcile
    assert model.balance == Decimal("98")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0
