"""The pytest fixture's starting scenario: none unless set; the ``wallet_sim_scenario`` ini option sets the
session's, the ``@pytest.mark.wallet_sim_scenario(...)`` marker one test's (run in pytester subprocesses)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest


def test_starts_with_the_ini_scenario(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "happy-path"
    assert any(p["player"] == "player001" for p in wallet_simulator.players("xpro"))


@pytest.mark.wallet_sim_scenario("builtin:insufficient_funds")
def test_the_marker_starts_one_test_with_another(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "insufficient-funds"


def test_the_next_test_is_back_to_the_ini_scenario(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "happy-path"
"""


def test_ini_option_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nwallet_sim_scenario = builtin:happy_path\n")
    pytester.makepyfile(test_start=TESTS)
    result = pytester.runpytest_subprocess("-q", "--strict-markers")
    result.assert_outcomes(passed=3)


def test_ini_paths_are_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nwallet_sim_scenario =\n    scenarios/mine.yaml\n    builtin:timeouts\n")
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "mine.yaml").write_text("name: mine\nplayers:\n  - {dialect: xpro, username: alice, balance: 7}\n")
    tests = pytester.mkdir("sub")
    (tests / "test_rel.py").write_text(
        "def test_both_files(wallet_simulator):\n"
        "    assert wallet_simulator.health()['scenario'] == 'mine + timeouts'\n"
        "    assert wallet_simulator.player('xpro', 'alice')['balance'] == 7\n"
    )
    result = pytester.runpytest_subprocess("-q", "--rootdir", str(pytester.path), str(tests))
    result.assert_outcomes(passed=1)


def test_without_a_scenario_a_test_starts_empty(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_empty="""
import pytest


def test_no_players_no_rules(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "(none)"
    assert wallet_simulator.players() == []


@pytest.mark.wallet_sim_scenario("builtin:happy_path")
def test_a_marker_is_enough(wallet_simulator):
    assert any(p["player"] == "player001" for p in wallet_simulator.players())
"""
    )
    result = pytester.runpytest_subprocess("-q", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_the_command_line_option_replaces_the_ini_one(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nwallet_sim_scenario = builtin:happy_path\n")
    pytester.makepyfile(
        test_cli="def test_it(wallet_simulator):\n    assert wallet_simulator.health()['scenario'] == 'timeouts'\n"
    )
    result = pytester.runpytest_subprocess("-q", "--wallet-sim-scenario", "builtin:timeouts")
    result.assert_outcomes(passed=1)


def test_a_test_after_a_marker_gets_back_a_session_of_several_scenarios(pytester: pytest.Pytester) -> None:
    """Two ini lines make the session's scenario two files; the test after a marked one got a 400 (its
    restore sent both files as one YAML document, every top-level key twice)."""
    pytester.makeini("[pytest]\nwallet_sim_scenario =\n    builtin:happy_path\n    builtin:timeouts\n")
    pytester.makepyfile(
        test_two="""
import pytest


@pytest.mark.wallet_sim_scenario("builtin:insufficient_funds")
def test_marked(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "insufficient-funds"


def test_back_to_both(wallet_simulator):
    assert wallet_simulator.health()["scenario"] == "happy-path + timeouts"
    assert [r["name"] for r in wallet_simulator.rules()["rules"]] == ["fizzy-timeout", "ambslot-timeout", "xpro-hang"]
"""
    )
    result = pytester.runpytest_subprocess("-q", "--strict-markers")
    result.assert_outcomes(passed=2)
