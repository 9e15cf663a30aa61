"""``python -m simulator certify``: against the simulator's own wallets (every case passes) and against a
test wallet with switchable defects (each caught by the case that names it, and by no other)."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections import Counter
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
from tests.conftest import ServeApp, Start

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
    extra = ["--blocked-player", "blocked-1", "--blocked-session", "cert-blocked-s1"] if dialect == "fizzy" else []
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


#: every planted defect, with the verdicts it must draw (and nothing else may fail or warn)
FIZZY_DEFECTS: dict[str, dict[str, str]] = {
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
        "rollback.second_rollback": "fail",
        "concurrency.same_withdraw": "fail",
        "timeout.retry_withdraw": "fail",
    },
    "race": {"concurrency.same_withdraw": "fail", "concurrency.overdraw": "fail"},
    "floats": {"precision.cents": "fail"},
    "truncate": {"precision.odd_amounts": "fail"},
    "slow": {"latency.budget": "fail"},
    "late": {"rollback.late_withdraw": "fail"},
    "ghost_deposit": {"deposit.unknown_withdraw": "fail"},
    "round_key": {"withdraw.two_on_one_round": "fail"},
    "retry_unknown": {"player.unknown": "fail"},
    "refund_twice": {"rollback.second_rollback": "fail"},
    "unknown_500": {"rollback.unknown_withdraw": "fail"},
    "no_undo": {  # one defect, one failure: the cases needing a rollback as a step are inconclusive
        "rollback.ok": "fail",
        "idempotency.rollback_repeat": "inconclusive",
        "rollback.second_rollback": "inconclusive",
        "concurrency.overdraw": "inconclusive",
        "timeout.rollback_abandoned": "inconclusive",
    },
}
AMB_DEFECTS: dict[str, dict[str, str]] = {
    "auth": {"auth.unknown_agent": "fail"},
    "repeats": {
        "idempotency.bet_repeat": "fail",
        "idempotency.payout_repeat": "fail",
        "idempotency.cancel_repeat": "fail",
        "idempotency.same_id_other_amount": "fail",
        "cancel.second_cancel": "fail",
        "bet.two_on_one_round": "note",  # it also accepts a second bet on a round, which is allowed
        "concurrency.same_bet": "fail",
        "timeout.retry_bet": "fail",
    },
    "race": {"concurrency.same_bet": "fail", "concurrency.overdraw": "fail"},
    "floats": {"precision.cents": "fail"},
    "truncate": {"precision.odd_amounts": "fail"},
    "slow": {"latency.budget": "fail"},
    "late": {"cancel.late_bet": "fail"},
    "cancel_amount": {"cancel.other_amount": "fail"},
    "one_payout": {"payout.two_payouts": "fail"},
    "round_key": {"bet.two_on_one_round": "fail"},
    "retry_unknown": {"player.unknown": "fail"},
    "refund_twice": {"cancel.second_cancel": "fail"},
    "unknown_500": {"cancel.unknown_round": "fail"},
    "no_undo": {
        "cancel.ok": "fail",
        "cancel.other_amount": "inconclusive",
        "idempotency.cancel_repeat": "inconclusive",
        "cancel.second_cancel": "inconclusive",
        "concurrency.overdraw": "inconclusive",
        "timeout.cancel_abandoned": "inconclusive",
    },
}
#: risks, not defects: a warning, exit 0
RISKS = {d: {"strict": {"future.unknown_fields": "warn"}} for d in ("fizzy", "ambslot")}
#: the "different but valid" wallet: every seed-silent choice made otherwise than the simulator's; notes only
VALID_OTHER = {
    "fizzy": {
        "idempotency.withdraw_repeat": "note",
        "idempotency.deposit_repeat": "note",
        "idempotency.rollback_repeat": "note",
        "idempotency.same_id_other_amount": "note",
        "rollback.unknown_withdraw": "note",
        "rollback.late_withdraw": "note",
        "deposit.unknown_withdraw": "note",
        "withdraw.two_on_one_round": "note",
        "timeout.retry_withdraw": "note",
        "withdraw.blocked_player": "inconclusive",  # its session is bound to its player: --blocked-session
    },
    "ambslot": {
        "balance.ok": "note",  # data.balance, no data.username
        "settle.ok": "skip",  # /settle is opt-in: 404
        "cancel.ok": "note",  # cancels keyed on the bet's transactionId: one note, then the bet's id is used
        "bet.insufficient_funds": "note",
        "idempotency.bet_repeat": "note",
        "idempotency.payout_repeat": "note",
        "idempotency.cancel_repeat": "note",
        "idempotency.same_id_other_amount": "note",
        "cancel.unknown_round": "note",
        "cancel.late_bet": "note",
        "bet.two_on_one_round": "note",
        "timeout.retry_bet": "note",
    },
}
DEFECTS = {"fizzy": FIZZY_DEFECTS, "ambslot": AMB_DEFECTS}
ALARMS = ("fail", "warn")


def not_passed(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["cases"] if c["status"] != "pass"}


@pytest.mark.parametrize("dialect", ["fizzy", "ambslot"])
async def test_every_planted_defect_is_caught_by_its_case_and_no_other(
    serve_app: ServeApp, tmp_path: Path, dialect: str
) -> None:
    """Each planted defect makes certify exit 1 naming its case; the correct wallet and the different-but-
    valid wallet exit 0 with no fail and no warn. Precision (true alarms / alarms) and recall (caught /
    planted) over all of them are both 1."""
    blocked = ["--blocked-player", "blocked-1"] if dialect == "fizzy" else []
    runs = {**DEFECTS[dialect], **RISKS[dialect], "": {}, "other": VALID_OTHER[dialect]}
    wrong: list[tuple[str, object, object]] = []
    alarms = true_alarms = caught = 0
    for defect, expected in runs.items():
        url = await serve_app(defect_wallet.app(frozenset([defect] if defect else [])))
        extra = ["--latency-budget", "0.2"] if defect == "slow" else []
        code, report = await certify(dialect, url, tmp_path, *blocked, *extra)
        got = not_passed(report)
        if got != expected:
            wrong.append((defect, got, expected))
        want_code = 1 if "fail" in expected.values() else 0
        if code != want_code:
            wrong.append((defect, f"exit {code}", f"exit {want_code}"))
        raised = [(case, status) for case, status in got.items() if status in ALARMS]
        alarms += len(raised)
        true_alarms += sum(1 for case, status in raised if expected.get(case) == status and defect not in ("", "other"))
        if defect in DEFECTS[dialect] and code == 1 and any(expected.get(c) == "fail" for c, _ in raised):
            caught += 1
        for case in report["cases"]:  # every verdict an integrator can act on, in words (no Python repr)
            assert "Decimal(" not in json.dumps(case), case
            if case["status"] in ("fail", "warn", "note", "inconclusive"):
                assert case["message"] and case["hint"], case
                assert case["exchanges"] or case["id"] == "latency.budget", case
    assert wrong == []
    precision, recall = true_alarms / alarms, caught / len(DEFECTS[dialect])
    print(f"{dialect}: precision {true_alarms}/{alarms} = {precision:.2f}, recall {caught}/{len(DEFECTS[dialect])}")
    assert (precision, recall) == (1.0, 1.0)


async def test_a_failure_shows_expected_actual_the_exchange_and_a_hint(
    serve_app: ServeApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    serve_app: ServeApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
        "amount, cancel_id, concurrency, currency, dialect, game, latency_budget, max_body, settle, timeout, username, "
        "wallet_url)",
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


async def test_load_mode_catches_double_applied_duplicates(serve_app: ServeApp, tmp_path: Path) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"repeats"})))
    mix = ["--duplicates", "1", "--abandoned", "0", "--rollbacks", "0"]
    code, report = await certify("ambslot", url, tmp_path, "--load", "10", *mix)
    assert code == 1
    final = next(c for c in report["cases"] if c["id"] == "reconcile.final")
    assert final["status"] == "fail" and "the model expects" in final["message"]
    assert "ids whose answers disagree with the model" in final["message"]
    assert final["details"]["suspects"] and len(final["details"]["suspects"]) <= 20


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


async def test_a_run_that_cannot_start_still_writes_every_report(
    start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 (the wallet refuses our signature): JSON, JUnit and HTML with one failing ``setup`` case that
    carries the reason, the exchange, and the exact string certify signed with the body MD5 and signature."""
    h = await start()
    junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
    code, report = await certify(
        "fizzy", h.url, tmp_path, "--private-key", "not-the-key", "--junit", str(junit), "--html", str(page)
    )
    assert code == 2
    (setup,) = report["cases"]
    assert setup["id"] == "setup" and setup["status"] == "fail" and report["summary"]["exit_code"] == 2
    assert "refused the first balance call" in setup["message"] and "ERROR_INVALID_SIGNATURE" in setup["message"]
    (exchange,) = setup["exchanges"]
    assert exchange["request"]["url"].endswith("/wallet/balance") and exchange["response"]["status"] == 401
    assert "ERROR_INVALID_SIGNATURE" in exchange["response"]["body"]
    signed = exchange["signed"]
    assert signed["string_signed"].startswith(f"POST\n{h.url}/wallet/balance\n")
    assert signed["string_signed"].endswith(signed["body_md5"]) and len(signed["body_md5"]) == 32
    assert len(signed["signature_sent"]) == 64
    testcase = ET.parse(junit).getroot().find("testsuite/testcase")
    assert testcase is not None and testcase.get("name") == "setup"
    failure = testcase.find("failure")
    assert failure is not None and failure.text is not None and "certify signed this string" in failure.text
    assert "setup" in page.read_text()
    err = capsys.readouterr().err
    assert "certify signed this string" in err and signed["body_md5"] in err


async def test_bad_settings_exit_2_with_a_setup_report(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    argv = ["certify", "fizzy", "--wallet-url", "http://127.0.0.1:1", "--json", str(report)]
    assert await asyncio.to_thread(main, argv) == 2
    (setup,) = json.loads(report.read_text())["cases"]
    assert setup["id"] == "setup" and "missing private_key" in setup["message"]


AMB_BALANCE = '{"status":{"code":0,"message":"Success"},"data":{"username":"cert-m1","wallet":{"balance":1000}}}'


async def test_a_huge_number_in_an_answer_is_refused_before_converting(serve_app: ServeApp, tmp_path: Path) -> None:
    """Issue 19: ``status.code: 1e1000000`` cost 35 s of CPU per answer; now it is an unreadable answer."""

    async def balance(_: web.Request) -> web.Response:
        return web.Response(text=AMB_BALANCE, content_type="application/json")

    async def bet(_: web.Request) -> web.Response:
        return web.Response(text='{"status":{"code":1e1000000,"message":"x"}}', content_type="application/json")

    hostile = web.Application()
    hostile.router.add_post("/balance", balance)
    hostile.router.add_post("/bet", bet)
    code, report = await certify("ambslot", await serve_app(hostile), tmp_path, "--cases", "bet.ok")
    assert code == 1
    (case,) = report["cases"]
    assert case["status"] == "fail"
    bet_exchange = next(x for x in case["exchanges"] if x["request"]["url"].endswith("/bet"))
    assert "out of range" in bet_exchange["note"]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "streamed"])
async def test_an_oversized_answer_is_a_failure_naming_its_size(
    serve_app: ServeApp, tmp_path: Path, streamed: bool
) -> None:
    """Issue 19: certify read every answer whole; now at most --max-body bytes (default 1 MiB)."""
    big = b'{"status":{"code":0},"pad":"' + b"x" * (3 * 1024 * 1024) + b'"}'

    async def balance(request: web.Request) -> web.StreamResponse:
        if not streamed:
            return web.Response(body=big, content_type="application/json")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(big), 256 * 1024):
            try:
                await response.write(big[i : i + 256 * 1024])
            except (ConnectionResetError, RuntimeError):
                break
        return response

    hostile = web.Application()
    hostile.router.add_post("/balance", balance)
    code, report = await certify("ambslot", await serve_app(hostile), tmp_path)
    assert code == 2
    message = report["cases"][0]["message"]
    size = "more than 1048576 bytes" if streamed else f"{len(big)} bytes (Content-Length)"
    assert size in message and "--max-body" in message


async def test_a_redirect_is_reported_and_never_followed_with_our_credentials(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    """Issue 19: certify followed a redirect to another host and re-sent Public-Key and Signature."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"balance": 1000, "currency": "EUR"})

    other = web.Application()
    other.router.add_post("/wallet/balance", elsewhere)
    other_url = await serve_app(other)

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{other_url}/wallet/balance")

    hostile = web.Application()
    hostile.router.add_post("/wallet/balance", moved)
    code, report = await certify("fizzy", await serve_app(hostile), tmp_path)
    assert code == 2
    message = report["cases"][0]["message"]
    assert f"redirect to {other_url}/wallet/balance" in message and "another origin" in message
    assert seen == []


async def test_the_time_budget_stops_the_run_and_skips_the_cases_not_reached(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    """A wallet slow on every answer: --max-seconds stops the run, the rest is skipped "time budget", and
    the latency case still judges the timings (and fails them)."""
    inner = defect_wallet.app()

    @web.middleware
    async def slow(request: web.Request, handler: Any) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return await handler(request)  # type: ignore[no-any-return]

    inner.middlewares.append(slow)
    url = await serve_app(inner)
    code, report = await certify("ambslot", url, tmp_path, "--max-seconds", "4", "--latency-budget", "0.25")
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert code == 1 and statuses["latency.budget"] == "fail"
    skipped = [c for c in report["cases"] if c["status"] == "skip"]
    assert skipped and all(c["message"].startswith("time budget") for c in skipped)
    assert len(report["cases"]) == len(ambslot.suite.cases)


async def test_cancel_id_bet_and_no_settle_say_up_front_what_the_wallet_does(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"other"})))
    code, report = await certify(
        "ambslot", url, tmp_path, "--cancel-id", "bet", "--no-settle", "--cases", "cancel.*", "--cases", "settle.*"
    )
    statuses = {c["id"]: c for c in report["cases"]}
    assert code == 0
    assert statuses["cancel.ok"]["status"] == "pass"  # no note: the convention was given
    assert statuses["settle.ok"]["status"] == "skip" and "--no-settle" in statuses["settle.ok"]["message"]


async def test_concurrency_messages_are_in_words(serve_app: ServeApp, tmp_path: Path) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"race"})))
    code, report = await certify("fizzy", url, tmp_path, "--cases", "concurrency.overdraw")
    assert code == 1
    message = report["cases"][0]["message"]
    assert " parallel withdraws of " in message and "succeeded on a balance of 1000" in message
    assert "at most 1 could" in message and "the wallet says" in message


async def test_a_success_certify_cannot_read_says_what_it_got_and_where_it_looked(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    async def balance(_: web.Request) -> web.Response:
        return web.json_response({"status": {"code": 0, "message": "Success"}, "data": {"credit": 5}})

    hostile = web.Application()
    hostile.router.add_post("/balance", balance)
    code, report = await certify("ambslot", await serve_app(hostile), tmp_path)
    assert code == 2
    message = report["cases"][0]["message"]
    assert "could not read the first balance call" in message and "refused" not in message
    assert 'data.wallet.balance nor data.balance (it got {"credit":5})' in message


async def test_cancels_keyed_on_the_bet_get_one_note_whichever_case_meets_them_first(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    url = await serve_app(defect_wallet.app(frozenset({"other"})))
    code, report = await certify(
        "ambslot", url, tmp_path, "--cases", "timeout.cancel_abandoned", "--cases", "cancel.ok"
    )
    assert code == 0
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert statuses == {"cancel.ok": "note", "timeout.cancel_abandoned": "pass"}
    assert "keys cancels on the bet's id" in report["cases"][0]["message"]


async def test_the_blocked_players_session_comes_from_blocked_session(serve_app: ServeApp, tmp_path: Path) -> None:
    """A wallet binding sessions to players: without --blocked-session the case is inconclusive, with it the
    blocked player is refused as the document says."""
    url = await serve_app(defect_wallet.app(frozenset({"other"})))
    cases = ["--cases", "withdraw.blocked_player", "--blocked-player", "blocked-1"]
    code, report = await certify("fizzy", url, tmp_path, *cases)
    assert (code, report["cases"][0]["status"]) == (0, "inconclusive")
    assert "--blocked-session" in report["cases"][0]["message"]
    code, report = await certify("fizzy", url, tmp_path, *cases, "--blocked-session", "blocked-s1")
    assert (code, report["cases"][0]["status"]) == (0, "pass")


async def test_an_ambslot_answer_slower_than_five_seconds_fails_without_any_flag(
    serve_app: ServeApp, tmp_path: Path
) -> None:
    """AMBSlot's document gives 5 s; no --latency-budget is needed to hold a wallet to it (one 5.1 s call)."""
    inner = defect_wallet.app()

    @web.middleware
    async def slow_payout(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/payout":
            await asyncio.sleep(5.1)
        return await handler(request)  # type: ignore[no-any-return]

    inner.middlewares.append(slow_payout)
    argv = ["certify", "ambslot", "--wallet-url", await serve_app(inner), *AMB, "--json", str(tmp_path / "r.json")]
    code = await asyncio.to_thread(main, [*argv, "--cases", "payout.ok", "--cases", "latency.*"])
    cases = {c["id"]: c for c in json.loads((tmp_path / "r.json").read_text())["cases"]}
    assert code == 1 and cases["payout.ok"]["status"] == "pass"
    assert cases["latency.budget"]["status"] == "fail"
    assert "the document's limit of 5 s: 1 of 1 calls to /payout" in cases["latency.budget"]["message"]
