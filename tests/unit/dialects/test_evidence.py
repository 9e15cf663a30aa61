"""dialects.evidence: what a refused request keeps, with secrets redacted."""

from __future__ import annotations

from simulator.dialects import evidence


def test_bearer_tokens_are_read_case_insensitively() -> None:
    assert evidence.bearer("bearer abc") == "abc" and evidence.bearer("Basic abc") is None
    assert evidence.bearer("Bearer   ") is None


def test_secrets_are_redacted_but_their_scheme_kept() -> None:
    assert evidence.redact("Authorization", "Bearer s3cr3t") == "Bearer <redacted, 6 chars>"
    assert evidence.redact("Content-Type", "application/json") == "application/json"


def test_clean_text_is_valid_utf8_and_bounded() -> None:
    assert evidence.clean("ab\udcffc") == "ab\ufffdc"
    assert evidence.clean("x" * 20, 5) == "xxxxx…(20 chars)"
    assert not evidence.is_text("\udcff") and evidence.is_text("ok")
