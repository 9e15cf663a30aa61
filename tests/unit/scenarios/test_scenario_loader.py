"""Scenario files: validation with file, line and key; the engine's matching and lifetimes (no HTTP)."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from simulator import config
from simulator.errors import SourceError
from simulator.operations import Operation
from simulator.scenarios import loader
from simulator.scenarios.engine import Engine
from simulator.service import Simulator

EXAMPLES = sorted(Path(__file__).resolve().parents[3].joinpath("scenarios").glob("*.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(SourceError) as caught:
        loader.parse(textwrap.dedent(text), "s.yaml", config.build(None))
    return caught.value.problems


def op(**fields: object) -> Operation:
    base: dict[str, object] = {"dialect": "xpro", "operation": "deposit", "endpoint": "/v2/members/transaction"}
    return Operation(**{**base, **fields})  # type: ignore[arg-type]


def test_every_example_is_valid_and_matches_the_shipped_schema() -> None:
    assert len(EXAMPLES) >= 9
    schema = loader.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in EXAMPLES:
        scenario = loader.read(str(path), config.build(None))
        assert scenario.name and scenario.sources == [str(path)]


def test_the_schema_file_ships_with_the_package() -> None:
    assert json.loads(Path(loader.schema_path()).read_text())["title"] == "Wallet simulator scenario"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nrules:\n  - match: {dialect: xpro}\n    respnd: {error: duplicate}\n",
            "s.yaml:4: rules[0].respnd: unknown key",
        ),
        ("name: x\nrules:\n  - match: {operation: withdrew}\n    delay: 1s\n", "s.yaml:3: rules[0].match.operation:"),
        ("name: x\nrules:\n  - delay: 5 seconds\n", "s.yaml:3: rules[0].delay:"),
        (
            "name: x\nrules:\n  - match: {transaction: '('}\n    delay: 1s\n",
            "s.yaml:3: rules[0].match.transaction: not a regular",
        ),
        (
            "name: x\nrules:\n  - respond: {code: 35}\n",
            "s.yaml:3: rules[0].respond.code: a raw code needs match.dialect",
        ),
        (
            "name: x\nrules:\n  - match: {dialect: fizzy}\n    respond: {code: 35}\n",
            "rules[0].respond.code: 35 is not one of fizzy's codes",
        ),
        ("name: x\nrules:\n  - match: {dialect: xpro, operation: bet}\n    delay: 1s\n", "xpro has no operation 'bet'"),
        ("name: x\nrules:\n  - match: {player: a}\n", "s.yaml:3: rules[0]: a rule needs an action"),
        ("name: x\nrules:\n  - respond: {error: duplicate}\n    fault: drop\n", "s.yaml:4: rules[0].fault: choose one"),
        ("name: x\nrules:\n  - match: {nth: 2, after: 1}\n    delay: 1s\n", "rules[0].match.after: use nth or after"),
        ("name: x\nrules:\n  - delay: {min: 2s, max: 1s}\n", "rules[0].delay: min (2s) is larger than max (1s)"),
        ("name: x\nrules:\n  - delay: 601s\n", "delays are capped"),
        ("name: x\nrules:\n  - match: {probability: 1.5}\n    delay: 1s\n", "rules[0].match.probability:"),
        ("name: x\nrules:\n  - times: 0\n    delay: 1s\n", "s.yaml:3: rules[0].times:"),
        ("name: x\nplayers:\n  - {dialect: xpro, username: bad-name}\n", "s.yaml:3: players[0].username:"),
        (
            "name: x\nplayers:\n  - {dialect: fizzy, playerId: p, balance: lots}\n",
            "players[0].balance: 'lots' is not an amount",
        ),
        (
            "name: x\nplayers:\n  - {dialect: fizzy, playerId: p, balance: -1}\n",
            "players[0].balance: must not be negative",
        ),
        ("name: x\nplayers:\n  - {dialect: casino, username: a}\n", "s.yaml:3: players[0].dialect:"),
        (
            "name: x\nplayers:\n  - {dialect: xpro, agent: nobody, username: a}\n",
            "players[0].agent: 'nobody' is not a configured xpro tenant",
        ),
        (
            "name: x\nplayers:\n  - {dialect: xpro, username: a}\n  - {dialect: xpro, username: a}\n",
            "s.yaml:4: players[1].username: player 'a' is already defined",
        ),
        ("name: x\nplayers:\n  - generate: {dialect: fizzy, count: 0}\n", "players[0].generate.count:"),
        (
            "name: x\nplayers:\n  - generate: {dialect: fizzy, count: 5, balance: {min: 9, max: 1}}\n",
            "players[0].generate.balance: min is larger",
        ),
        ("description: no name\n", "s.yaml:1: (top level): 'name' is a required property"),
        ("name: x\nname: y\n", "s.yaml:2: name: duplicate key"),
        ("name: x\nrules: [\n", "s.yaml:3: (syntax):"),
        ("- just\n- a list\n", "s.yaml:1: (top level): a scenario is a mapping"),
        ("name: x\nseed: abc\n", "s.yaml:2: seed:"),
    ],
)
def test_mistakes_are_reported_with_file_line_and_key(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    found = problems(
        """\
        name: many
        rules:
          - match: {transaction: '['}
            delay: 1s
          - respond: {code: 35}
        """
    )
    assert len(found) == 2 and found[0].startswith("s.yaml:3:") and found[1].startswith("s.yaml:5:")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SourceError) as caught:
        loader.read(str(missing))
    assert caught.value.problems == [f"{missing}: no such file"]  # not "line 0", not parsed as YAML
    with pytest.raises(SourceError, match="is a directory"):
        loader.read(str(tmp_path))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(SourceError, match="not UTF-8"):
        loader.read(str(tmp_path / "bin.yaml"))


def test_load_files_reports_all_files_and_combines_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("name: a\nplayers:\n  - {dialect: fizzy, playerId: p, balance: 1}\nrules:\n  - delay: 1ms\n")
    b.write_text(
        "name: b\nplayers:\n  - {dialect: fizzy, playerId: p, balance: 2}\nrules:\n  - name: second\n    delay: 2ms\n"
    )
    combined = loader.load_files([str(a), str(b)], config.build(None))
    assert combined.name == "a + b" and [r.name for r in combined.rules] == ["rules[0]", "second"]
    sim = Simulator(config.build(None), combined)
    player = sim.ledger.player("fizzy", "demo-public-key", "p")
    assert player is not None and player.balance == 2  # the later file wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - delay: never\n")
    with pytest.raises(SourceError) as caught:
        loader.load_files([str(bad), str(a), str(bad)])
    assert len(caught.value.problems) == 2 and all(str(bad) + ":3:" in p for p in caught.value.problems)


# the engine


def engine(text: str) -> Engine:
    return Engine(loader.parse(textwrap.dedent(text), "s.yaml", config.build(None)))


def test_first_matching_rule_decides_and_times_retires_it() -> None:
    e = engine(
        """\
        name: t
        rules:
          - name: first
            match: {player: a}
            respond: {error: duplicate}
            times: 2
          - name: second
            respond: {error: timeout}
        """
    )
    decided = [e.decide(op(player="a")) for _ in range(3)]
    assert [d.rule for d in decided if d] == ["first", "first", "second"]
    assert e.decide(op(player="b")).rule == "second"  # type: ignore[union-attr]


def test_nth_after_and_counting_only_matching_requests() -> None:
    e = engine(
        """\
        name: t
        rules:
          - {name: third, match: {player: a, nth: 3}, fault: drop}
          - {name: later, match: {player: b, after: 2}, fault: empty}
        """
    )
    seq = []
    for player in ["a", "b", "a", "b", "x", "a", "b", "a", "b"]:
        d = e.decide(op(player=player))
        seq.append(d.rule if d else None)
    assert seq == [None, None, None, None, None, "third", "later", None, "later"]


@pytest.mark.parametrize(
    ("match", "fields", "hit"),
    [
        ({"dialect": "fizzy"}, {}, False),
        ({"operation": "deposit"}, {}, True),
        ({"endpoint": "/v2/members/transaction"}, {}, True),
        ({"agent": "demo"}, {"agent": "demo"}, True),
        ({"transaction": "^PEND-"}, {"transaction": "PEND-1"}, True),
        ({"transaction": "^PEND-"}, {"transaction": "X-PEND-1"}, False),
        ({"transaction": "^PEND-"}, {}, False),
        ({"round": "r1", "game": "g"}, {"round": "r1", "game": "g"}, True),
        ({"currency": "THB"}, {"currency": "EUR"}, False),
        ({"amount": {"gt": 10, "lte": 20}}, {"amount": Decimal("20")}, True),
        ({"amount": {"gt": 10}}, {"amount": Decimal("10")}, False),
        ({"amount": {"eq": "0.10"}}, {"amount": Decimal("0.1")}, True),
        ({"amount": {"gte": 1}}, {}, False),
    ],
)
def test_match_keys(match: dict[str, object], fields: dict[str, object], hit: bool) -> None:
    text = json.dumps({"name": "t", "rules": [{"match": match, "fault": "drop"}]})
    assert (engine(text).decide(op(**fields)) is not None) is hit


def test_probability_is_reproducible_for_a_seed_and_resets() -> None:
    text = "name: t\nseed: {seed}\nrules:\n  - {{match: {{probability: 0.3}}, fault: drop}}\n"
    first = engine(text.format(seed=7))
    run1 = [first.decide(op()) is not None for _ in range(200)]
    first.reset()
    run2 = [first.decide(op()) is not None for _ in range(200)]
    other = [engine(text.format(seed=8)).decide(op()) is not None for _ in range(200)]
    assert run1 == run2 != other
    assert 30 < sum(run1) < 90  # about 60 of 200


def test_delays_are_sampled_reproducibly() -> None:
    text = """\
        name: t
        seed: 3
        rules:
          - {match: {player: f}, delay: 250ms}
          - {match: {player: u}, delay: {min: 10ms, max: 20ms}}
          - {match: {player: l}, delay: {distribution: lognormal, median: 100ms, sigma: 0.5, max: 150ms}}
        """
    e = engine(text)
    assert e.decide(op(player="f")).delay == 0.25  # type: ignore[union-attr]
    uniform = [e.decide(op(player="u")).delay for _ in range(50)]  # type: ignore[union-attr]
    assert all(0.01 <= d <= 0.02 for d in uniform)
    lognormal = [e.decide(op(player="l")).delay for _ in range(200)]  # type: ignore[union-attr]
    assert max(lognormal) == 0.15 and min(lognormal) < 0.1
    e.reset()
    assert [e.decide(op(player="u")).delay for _ in range(50)] == uniform  # type: ignore[union-attr]


def test_apply_defaults() -> None:
    e = engine(
        """\
        name: t
        rules:
          - {match: {player: a}, respond: {error: timeout}}
          - {match: {player: b}, fault: drop, apply: true}
          - {match: {player: c}, delay: 1ms}
        """
    )
    assert e.decide(op(player="a")).apply is False  # type: ignore[union-attr]
    assert e.decide(op(player="b")).apply is True  # type: ignore[union-attr]
    delay_only = e.decide(op(player="c"))
    assert delay_only is not None and delay_only.apply is True  # a delay-only rule always applies


def test_raw_codes_are_normalised_for_their_dialect() -> None:
    e = engine("name: t\nrules:\n  - {match: {dialect: xpro}, respond: {code: '35'}}\n")
    assert e.rules[0].respond == {"code": 35}


def test_generated_players_are_deterministic_and_valid() -> None:
    text = """\
        name: g
        seed: {seed}
        players:
          - generate: {{dialect: xpro, count: 300, balance: {{min: 1, max: 2}}}}
          - generate: {{dialect: fizzy, count: 50, currency: USD, balance: 7}}
        """
    settings = config.build(None)

    def players(seed: int) -> list[tuple[str, str, Decimal, str]]:
        sim = Simulator(settings, loader.parse(textwrap.dedent(text.format(seed=seed)), "g.yaml", settings))
        return [(p.dialect, p.id, p.balance, p.currency) for p in sim.ledger.players.values()]

    a, b, c = players(1), players(1), players(2)
    assert a == b and a != c
    xpro = [p for p in a if p[0] == "xpro"]
    assert len(xpro) == 300 and len({p[1] for p in xpro}) == 300
    assert all(p[1].isalnum() and p[1].isascii() and len(p[1]) <= 25 for p in xpro)
    assert all(Decimal(1) <= p[2] <= Decimal(2) and p[2] == p[2].quantize(Decimal("0.01")) for p in xpro)
    fizzy = [p for p in a if p[0] == "fizzy"]
    assert len(fizzy) == 50 and all(p[2] == 7 and p[3] == "USD" for p in fizzy)


def test_every_problem_of_a_file_in_one_pass_with_did_you_mean() -> None:
    found = problems(
        """\
        name: x
        players:
          - {dialect: xpro, usrname: a}
          - {dialect: fizzy, playerId: p, balance: lots}
        rules:
          - match: {dialect: xpro, operation: withdrew}
            respnd: {error: duplicate}
          - match: {dialect: fizzy, operation: withdraww}
            delay: 1s
          - match: {dialect: fizzy}
            respond: {code: ERROR_TIMOUT}
          - match: {dialect: xpro, agent: dmeo}
            delay: 1s
          - respond: {error: insufficient_fund}
        """
    )
    # schema problems and semantic problems together, in file order
    assert [p.split(":")[1] for p in found] == ["3", "3", "4", "6", "7", "8", "11", "12", "14"], found
    text = "\n".join(found)
    assert "unknown key 'usrname' (did you mean 'username'?)" in text
    assert "'lots' is not an amount" in text
    assert "'withdrew' is not one of" in text and "(did you mean 'withdraw'?)" in text
    assert "unknown key 'respnd' (did you mean 'respond'?)" in text
    assert "'withdraww' is not one of" in text
    assert "(did you mean 'ERROR_TIMEOUT'?)" in text
    assert "'dmeo' is not a configured xpro tenant (did you mean 'demo'?)" in text
    assert "(did you mean 'insufficient_funds'?)" in text


def test_builtin_scenarios_load_by_name() -> None:
    names = loader.builtin_names()
    assert {"happy_path", "insufficient_funds", "timeouts", "flaky_network"} <= set(names)
    assert names == sorted(p.stem for p in EXAMPLES)  # one copy: the package's own files
    scenario = loader.read("builtin:insufficient_funds", config.build(None))
    assert scenario.name == "insufficient-funds" and scenario.sources == ["builtin:insufficient_funds"]
    assert loader.load_files(["builtin:timeouts.yaml"]).name == "timeouts"
    with pytest.raises(SourceError) as caught:
        loader.read("builtin:timeout")
    assert caught.value.problems[0].startswith("builtin:timeout: no built-in scenario 'timeout'")
    assert "(did you mean 'timeouts'?)" in caught.value.problems[0]


def test_a_later_file_takes_over_a_player_and_its_sessions(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("name: a\nplayers:\n  - {dialect: fizzy, playerId: p-1, sessions: [s-a, s-shared]}\n")
    second.write_text(
        "name: b\nplayers:\n  - {dialect: fizzy, playerId: p-1, sessions: [s-b]}\n"
        "  - {dialect: fizzy, playerId: p-2, sessions: [s-shared]}\n"
    )
    settings = config.build(None)
    sim = Simulator(settings, loader.load_files([str(first), str(second)], settings))
    p1 = sim.ledger.player("fizzy", "demo-public-key", "p-1")
    p2 = sim.ledger.player("fizzy", "demo-public-key", "p-2")
    assert p1 is not None and p2 is not None
    assert sorted(p1.sessions) == ["s-b"] and sorted(p2.sessions) == ["s-shared"]
    assert sim.ledger.bind_session(p1, "s-a", create=False) is None
    assert sim.ledger.bind_session(p1, "s-shared", create=False) == "p-2"


def test_a_scenario_with_more_players_than_the_ledger_holds_is_refused_at_load() -> None:
    text = textwrap.dedent(
        """\
        name: crowd
        players:
          - {dialect: ambslot, username: a, balance: 1}
          - generate: {dialect: fizzy, count: 3}
        """
    )
    settings = config.from_dict({"server": {"max_players": 3}})
    with pytest.raises(SourceError) as caught:
        loader.parse(text, "crowd.yaml", settings)
    assert caught.value.problems == [
        "crowd.yaml:2: players: 4 players is more than the ledger holds (server.max_players: 3)"
    ]
    assert len(loader.parse(text, "crowd.yaml", config.from_dict({"server": {"max_players": 4}})).players) == 2
