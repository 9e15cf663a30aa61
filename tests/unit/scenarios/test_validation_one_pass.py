"""One pass means it: a scenario, config or certify target file with many mistakes gets every one of them,
schema and semantic together, each with file, line and key; warnings for rules that can never match or whose
``apply`` does nothing come out in the same list."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator import config
from simulator.certify.target import resolve
from simulator.errors import SourceError
from simulator.scenarios import loader

BAD_SCENARIO = textwrap.dedent(
    """\
    name: everything-wrong
    players:
      - {dialect: xpro, username: alice, balance: abc, colour: red}
      - {dialect: xpro, username: bob, balance: "10.123"}
      - {dialect: fizzy, playerId: carol, balance: "1.5", bet_limit: "0.001"}
    rules:
      - name: backwards
        match: {operation: withdrw}
        delay: {min: 2s, max: 1s}
      - name: too slow
        match: {operation: deposit}
        delay: 700s
      - name: never
        match: {amount: {gt: 10, lt: 5}}
        respond: {error: timeout}
      - name: pointless apply
        match: {operation: withdraw}
        delay: 1s
        apply: true
    """
)

# (line, key, what the message says): every one must come out of one run
EXPECTED = [
    (3, "players[0].colour", "unknown key 'colour'"),
    (3, "players[0].balance", "'abc' is not an amount"),
    (4, "players[1].balance", "more than 2 decimal places"),
    (5, "players[2].bet_limit", "more than 2 decimal places"),
    (8, "rules[0].match.operation", "(did you mean 'withdraw'?)"),
    (9, "rules[0].delay", "min (2s) is larger than max (1s)"),
    (12, "rules[1].delay", "700s: delays are capped at 600s"),
    (14, "rules[2].match.amount", "warning: no amount satisfies gt: 10, lt: 5: this rule can never match"),
    (19, "rules[3].apply", "warning: apply does nothing on a rule that only delays"),
]


def check_all_reported(problems: list[str], filename: str) -> None:
    for line, key, message in EXPECTED:
        prefix = f"{filename}:{line}: {key}: "
        assert any(p.startswith(prefix) and message in p for p in problems), (prefix, message, problems)
    assert len(problems) == len(EXPECTED), problems
    lines = [int(p.removeprefix(filename + ":").split(":")[0]) for p in problems]
    assert lines == sorted(lines)  # in file order


def test_the_loader_reports_every_problem_of_a_file_in_one_pass() -> None:
    with pytest.raises(SourceError) as caught:
        loader.parse(BAD_SCENARIO, "bad.yaml", config.build(None))
    check_all_reported(caught.value.problems, "bad.yaml")


def test_validate_reports_every_problem_of_a_file_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SCENARIO)
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    check_all_reported(done.stderr.splitlines(), str(path))


def test_a_valid_file_with_warnings_loads_and_validate_shows_them(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(
        "name: w\nrules:\n  - match: {operation: balance, amount: {gte: 5}}\n    respond: {error: timeout}\n"
        "    apply: true\n"
    )
    scenario = loader.read(str(path))
    assert [w.split(": ", 2)[1] for w in scenario.warnings] == ["rules[0].match.amount", "rules[0].apply"]
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"{path}:3: rules[0].match.amount: warning: balance carries no amount" in done.stderr
    assert f"{path}:5: rules[0].apply: warning: apply does nothing on balance" in done.stderr
    assert "ok (w: 0 player entries, 1 rule)" in done.stdout


@pytest.mark.parametrize(
    ("amount", "reachable"),
    [
        ({"gt": 10, "lt": 5}, False),
        ({"gte": 5, "lte": 5}, True),
        ({"gt": 5, "lte": 5}, False),
        ({"eq": 3, "gt": 3}, False),
        ({"lt": 0}, False),
        ({"lte": 0}, True),
        ({"gte": 1}, True),
    ],
)
def test_amount_ranges_that_can_never_match_warn(amount: dict[str, int], reachable: bool) -> None:
    text = f"name: r\nrules:\n  - match: {{amount: {amount}}}\n    respond: {{error: timeout}}\n"
    scenario = loader.parse(text, "r.yaml")
    assert (scenario.warnings == []) == reachable, scenario.warnings


def test_a_rule_with_a_typo_still_has_its_other_parts_checked() -> None:
    with pytest.raises(SourceError) as caught:
        loader.parse(
            "name: x\nrules:\n  - match: {dialect: xpro, operation: bet, transaction: '('}\n    delay: 700s\n"
            "    respnd: {error: timeout}\n",
            "x.yaml",
        )
    found = caught.value.problems
    assert [p.split(": ")[1] for p in found] == [
        "rules[0].match.operation",
        "rules[0].match.transaction",
        "rules[0].delay",
        "rules[0].respnd",
    ], found


def test_a_config_file_reports_schema_and_semantic_problems_together(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "server:\n  port: abc\nfizzy:\n  default_balance: abc\n  brands:\n"
        "    - {public_key: k, private_key: p, bogus: 1}\nambslot:\n  default_balance: '1.123'\n"
    )
    with pytest.raises(SourceError) as caught:
        config.load(str(path))
    found = caught.value.problems
    assert [p.split(": ")[0:2] for p in found] == [
        [f"{path}:2", "server.port"],
        [f"{path}:4", "fizzy.default_balance"],
        [f"{path}:6", "fizzy.brands[0].bogus"],
        [f"{path}:8", "ambslot.default_balance"],
    ], found
    assert "more than 2 decimal places" in found[3]


def test_a_certify_target_file_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "wallet_url: ftp://x\ncurrency: EUR\namount: '1.234'\nconcurrency: 1\npublik_key: abc\ntimeout: 5\n"
        "latency_budget: -1\nplayer: p\nsession: s\nprivate_key: k\n"
    )
    with pytest.raises(SourceError) as caught:
        resolve("fizzy", {}, str(path), {})
    found = caught.value.problems
    assert [p.split(": ")[0:2] for p in found[:5]] == [
        [f"{path}:1", "wallet_url"],
        [f"{path}:3", "amount"],
        [f"{path}:4", "concurrency"],
        [f"{path}:5", "publik_key"],
        [f"{path}:7", "latency_budget"],
    ], found
    assert "(did you mean 'public_key'?)" in found[3]
    assert "not a positive amount with at most 2 decimal places" in found[1]
    assert found[5:] == [
        "missing public_key: give --public-key, CERTIFY_PUBLIC_KEY or public_key: in the --target file"
    ]
