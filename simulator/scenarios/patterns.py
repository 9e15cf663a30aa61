"""Patterns from users (a rule's ``match.transaction``), run on RE2: matching takes time linear in the
length of the id, whatever the pattern, so an id the client chooses cannot freeze the event loop the way a
backtracking pattern such as ``(a+)+$`` does on Python's ``re``.

RE2 has no backreferences (``\\1``, ``(?P=name)``) and no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``);
such patterns are refused when the scenario or rule is loaded. ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are
ASCII-only, and ``$`` matches only at the very end of the id.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

MAX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern (its default): a larger one is refused
UNSUPPORTED = "RE2 supports no backreferences (\\1) nor lookaround ((?=...), (?!...), (?<=...), (?<!...))"


class Pattern(Protocol):
    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the refusal is reported with the file, line and key; no stderr noise
    options.max_mem = MAX_MEMORY
    return options


def compile_pattern(text: str) -> Pattern:
    """``text`` compiled by RE2, or :class:`PatternError` with RE2's reason (and what RE2 lacks)."""
    try:
        compiled: Pattern = re2.compile(text, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = f"; {UNSUPPORTED}" if "invalid perl operator" in str(reason) or "escape" in str(reason) else ""
        raise PatternError(f"{reason}{hint}") from None
    return compiled
