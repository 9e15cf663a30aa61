"""config.yamlsrc: YAML that remembers where each value came from."""

from __future__ import annotations

import pytest

from simulator.config import yamlsrc
from simulator.errors import SourceError


def test_dotted_key_paths() -> None:
    assert yamlsrc.dotted(["rules", 0, "match", "operation"]) == "rules[0].match.operation"
    assert yamlsrc.dotted([]) == "(top level)"


def test_a_path_points_at_its_line() -> None:
    data, source = yamlsrc.load("server:\n  port: 1\nrules:\n  - name: a\n  - name: b\n", "f.yaml")
    assert data["rules"][1]["name"] == "b"
    assert source.where(["rules", 1, "name"], "bad") == "f.yaml:5: rules[1].name: bad"
    assert source.line(["server", "missing"]) == 1  # the deepest node that exists


def test_duplicate_keys_are_mistakes() -> None:
    with pytest.raises(SourceError) as caught:
        yamlsrc.load("a: 1\nb: 2\na: 3\n", "dup.yaml")
    assert any("dup.yaml:3" in p and "a" in p for p in caught.value.problems)


def test_did_you_mean() -> None:
    assert yamlsrc.did_you_mean("withdrawl", ["withdraw", "deposit"]) == " (did you mean 'withdraw'?)"
    assert yamlsrc.did_you_mean("zzz", ["withdraw"]) == ""


def test_schema_errors_come_in_file_order_with_lines() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"enum": ["x"]}}}
    data, source = yamlsrc.load("b: y\na: one\n", "s.yaml")
    problems = [text for _, _, text in yamlsrc.schema_errors(data, schema, source)]
    assert [p.split(":")[1] for p in problems] == ["1", "2"]
