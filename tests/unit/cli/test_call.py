"""cli.call: reading a wallet's answer for the helper commands."""

from __future__ import annotations

from simulator.cli import call
from simulator.dialects.client import Reply


def test_code_of_walks_the_answer_and_tolerates_other_shapes() -> None:
    assert call.code_of(Reply(200, {"status": {"code": 0}}, {}), "status", "code") == 0
    assert call.code_of(Reply(200, ["not", "a", "dict"], {}), "code") is None
