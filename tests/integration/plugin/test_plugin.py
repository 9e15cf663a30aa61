"""The pytest plugin as a CI user meets it: a project with no conftest, run in its own pytest process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

USER_TESTS = """
import json
import urllib.request

import pytest


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def bet(url, round_id, amount):
    return post(url + "/bet", {
        "username": "member001", "agent": "demo", "game": "G", "gameId": "G", "roundId": round_id,
        "amount": amount, "currency": "THB", "transactionId": "tx-" + round_id, "timestamp": "2026-01-01T00:00:00.000",
        "isEndRound": False, "featureBuy": False,
    })


def test_a_sync_client(wallet_simulator):
    wallet_simulator.set_player("ambslot", "member001", balance=100)
    assert bet(wallet_simulator.url, "r1", 30)["data"]["balance"] == {"before": 100, "after": 70}
    assert wallet_simulator.journal(operation="bet")[-1]["response"]["body"]["status"]["code"] == 0
    wallet_simulator.verify({"dialect": "ambslot", "operation": "bet"}, 1)
    assert wallet_simulator.players(dialect="ambslot")[0]["balance"] == 70
    assert wallet_simulator.transactions(player="member001")[0]["amount"] == -30
    assert wallet_simulator.invariants()["ok"]


def test_each_test_starts_from_a_reset(wallet_simulator):
    assert wallet_simulator.journal() == []
    assert wallet_simulator.transactions() == []


def test_load_scenario_and_a_failing_verify(wallet_simulator):
    broke = "name: broke\\nrules:\\n  - {match: {operation: bet}, respond: {error: insufficient_funds}}\\n"
    wallet_simulator.load_scenario(broke)
    assert bet(wallet_simulator.url, "r2", 1)["status"]["code"] == 800
    with pytest.raises(AssertionError, match="closest"):
        wallet_simulator.verify({"operation": "payout"}, 1)


def test_the_scenario_is_back_to_the_sessions_after_a_load(wallet_simulator):
    assert bet(wallet_simulator.url, "r3", 1)["status"]["code"] == 0


@pytest.mark.wallet_scenario("locked.yaml")
def test_marker(wallet_simulator):
    assert bet(wallet_simulator.url, "r4", 1)["status"]["code"] == 999


@pytest.mark.asyncio
async def test_an_async_client(wallet_simulator):
    import aiohttp
    async with aiohttp.ClientSession() as session:
        body = {"username": "member001", "agentId": "demo"}
        async with session.post(wallet_simulator.url + "/balance", json=body) as r:
            assert (await r.json())["status"]["code"] == 0
    assert wallet_simulator.journal()[-1]["operation"] == "balance"


def test_an_invalid_scenario_is_refused_with_its_line(wallet_simulator):
    with pytest.raises(AssertionError, match=r":2: rules"):
        wallet_simulator.load_scenario("name: bad\\nrules: 3\\n")


def test_rules_at_run_time(wallet_simulator):
    wallet_simulator.set_player("ambslot", "member001", balance=100)
    rule = {"name": "fail-once", "match": {"operation": "bet"}, "respond": {"error": "insufficient_funds"}, "times": 1}
    assert wallet_simulator.add_rule(rule, position=0)["position"] == 0
    assert bet(wallet_simulator.url, "r5", 1)["status"]["code"] == 800
    assert bet(wallet_simulator.url, "r6", 1)["data"]["balance"]["after"] == 99
    listed = wallet_simulator.rules()
    assert [(r["name"], r["hits"], r["remaining"]) for r in listed["rules"]] == [("fail-once", 1, 0)]
    wallet_simulator.replace_rule("fail-once", "match: {operation: payout}\\nfault: drop\\n")
    assert wallet_simulator.rules()["never_fired"] == ["fail-once"]
    with pytest.raises(AssertionError, match=r"exists"):
        wallet_simulator.add_rule({"name": "fail-once", "fault": "drop"})
    wallet_simulator.remove_rule("fail-once")
    with pytest.raises(AssertionError, match=r"404"):
        wallet_simulator.remove_rule("fail-once")
    wallet_simulator.add_rule({"name": "left-over", "match": {"operation": "bet"}, "fault": "drop"})


def test_a_rule_added_in_one_test_is_gone_in_the_next(wallet_simulator):
    assert wallet_simulator.rules() == {"rules": [], "never_fired": []}
"""

LOCKED = "name: locked\nplayers:\n  - {dialect: ambslot, username: member001, balance: 5, locked: true}\n"


def test_fixture_marker_and_reset_without_any_conftest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wallet=USER_TESTS)
    pytester.makefile(".yaml", locked=LOCKED)
    result = pytester.runpytest_subprocess("-p", "asyncio", "-q")
    result.assert_outcomes(passed=9)


def test_command_line_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_opts="""
def test_session_scenario_and_config(wallet_simulator):
    players = {p["player"]: p for p in wallet_simulator.players()}
    assert players["player001"]["balance"] == 1000            # from the session scenario
    assert wallet_simulator.health()["scenario"] == "happy-path"
    assert any(p["tenant"] == "shop" for p in wallet_simulator.players("xpro")) is False
    assert wallet_simulator.set_player("xpro", "x1", agent="shop")["tenant"] == "shop"   # from the config
"""
    )
    pytester.makefile(".yaml", cfg="xpro:\n  agents:\n    - {id: shop, secret: s, api_key: " + "k" * 32 + "}\n")
    pytester.makefile(".yaml", happy=(ROOT / "scenarios" / "happy_path.yaml").read_text())
    result = pytester.runpytest_subprocess(
        "-q", "--wallet-sim-config", "cfg.yaml", "--wallet-sim-scenario", "happy.yaml"
    )
    result.assert_outcomes(passed=1)


def test_plugin_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--wallet-sim-config*", "*--wallet-sim-scenario*"])


CI_USER = """
import asyncio
import json
import urllib.request
from decimal import Decimal

import pytest


def balance(url, player):
    body = json.dumps({"username": player, "agentId": "demo"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/balance", data=body), timeout=10) as r:
        return json.loads(r.read())


def test_builtin_scenario_and_decimal_amounts(wallet_simulator):
    wallet_simulator.load_scenario("builtin:happy_path")
    assert wallet_simulator.player("ambslot", "member002")["balance"] == Decimal("500")
    assert wallet_simulator.player("fizzy", "p-1")["balance"] == 250      # Decimal compares with int
    assert wallet_simulator.player("fizzy", "p-1")["balance"] != 250.01


@pytest.mark.wallet_scenario("builtin:wallet_locked")
def test_builtin_marker(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "wallet-locked"


def test_a_missing_file_is_refused_clearly(wallet_simulator):
    with pytest.raises(AssertionError, match="no scenario file 'nope.yaml' .*builtin:NAME"):
        wallet_simulator.load_scenario("nope.yaml")
    with pytest.raises(AssertionError, match="did you mean 'timeouts'"):
        wallet_simulator.load_scenario("builtin:timeout")


def test_a_relative_path_is_found_next_to_the_test(wallet_simulator):
    assert wallet_simulator.load_scenario("sub/here.yaml")["name"] == "here"


async def test_async_without_any_plugin(wallet_simulator):
    await asyncio.sleep(0)
    answer = await asyncio.get_running_loop().run_in_executor(None, balance, wallet_simulator.url, "member001")
    assert answer["status"]["code"] == 0
    wallet_simulator.verify({"dialect": "ambslot", "operation": "balance"}, count=1)


def test_a_failed_verify_is_compact(wallet_simulator):
    balance(wallet_simulator.url, "member001")
    with pytest.raises(AssertionError) as caught:
        wallet_simulator.verify({"dialect": "ambslot", "operation": "bet", "player": "member001"}, count=1)
    text = str(caught.value)
    assert "0 requests match" in text and "expected count 1" in text
    assert "operation: expected 'bet', got 'balance'" in text
    assert len(text.splitlines()) <= 7 and '"request"' not in text
"""


def test_builtin_scenarios_async_tests_and_compact_verify(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ci=CI_USER)
    pytester.mkdir("tests_sub")
    (pytester.path / "sub").mkdir()
    (pytester.path / "sub" / "here.yaml").write_text("name: here\n")
    # no async plugin at all: the wallet_simulator plugin runs the async test itself
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio", "-p", "no:aiohttp", "-W", "error")
    result.assert_outcomes(passed=6)
    # with pytest-asyncio in auto mode, it runs the async test, and nothing changes for the user
    result = pytester.runpytest_subprocess("-q", "-p", "asyncio", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=6)


CI_EXAMPLES = [
    name
    for name in ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
    if "<!-- ci-example: " in (ROOT / name).read_text(encoding="utf-8")
]


@pytest.mark.parametrize("document", CI_EXAMPLES)
def test_the_documented_ci_example_passes_as_written(pytester: pytest.Pytester, document: str) -> None:
    assert {"README.md", "docs/ci.md"} <= set(CI_EXAMPLES)
    text = (ROOT / document).read_text(encoding="utf-8")
    found = re.search(r"<!-- ci-example: (\S+) -->\s*```python\n(.*?)\n```", text, re.S)
    assert found is not None
    name, code = found.group(1), found.group(2)
    pytester.makepyfile(**{name.removesuffix(".py"): code})
    tests = code.count("\ndef test_") + code.count("\nasync def test_")
    # a separate project, the installed package, no async plugin: exactly what the README promises
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio", "-p", "no:aiohttp")
    result.assert_outcomes(passed=tests)
