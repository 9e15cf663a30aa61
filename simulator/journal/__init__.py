"""The journal: a bounded record of every dialect request (a ring buffer bounded by entries and by bytes).

Each entry keeps the decoded request (for XPro the decrypted plaintext), the rule that fired, the response
status and body, and the time taken, so tests can assert on what really crossed the wire. A refused
request also keeps what arrived (``received``: headers with secrets redacted, the body up to a bounded
prefix) and, for a refused signature, what the simulator computed (``diagnostics``).

Each entry carries an estimate of the memory it holds (``size``, computed once by whoever builds it, from
the byte lengths it already knows); the journal drops its oldest entries while the total is over
``max_bytes``, so a flood of large requests cannot grow memory past the bound.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from simulator.operations import Operation


@dataclass(slots=True)
class Entry:
    seq: int
    time: float
    dialect: str
    endpoint: str
    op: Operation | None
    status: int
    body: Any
    code: Any
    rule: str | None
    fault: str | None
    detail: str | None
    ms: float
    delay: float = 0.0
    size: int = 0  # estimated bytes held by the entry (see the module docstring)
    received: dict[str, Any] | None = None  # refused requests: method, path, redacted headers, body prefix
    diagnostics: dict[str, Any] | None = None  # refused signatures: canonical string, body MD5, expected

    @property
    def operation(self) -> str | None:
        return self.op.operation if self.op else None

    @property
    def player(self) -> str | None:
        return self.op.player if self.op else None

    @property
    def transaction(self) -> str | None:
        return self.op.transaction if self.op else None

    def to_dict(self) -> dict[str, Any]:
        op = self.op
        return {
            "seq": self.seq,
            "time": dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(timespec="milliseconds"),
            "dialect": self.dialect,
            "endpoint": self.endpoint,
            "operation": self.operation,
            "agent": op.agent if op else None,
            "player": self.player,
            "transaction": self.transaction,
            "round": op.round if op else None,
            "amount": op.amount if op else None,
            "request": op.request if op else None,
            "response": {"status": self.status, "body": self.body, "code": self.code, "fault": self.fault},
            "rule": self.rule,
            "detail": self.detail,
            "ms": round(self.ms, 3),
            "delay_ms": round(self.delay * 1000, 3),
            "received": self.received,
            "diagnostics": self.diagnostics,
        }


def is_error(entry: Entry) -> bool:
    """A refusal or an injected error answer (a success has code 0, or none for Fizzy)."""
    return entry.fault is None and (entry.status >= 400 or entry.code not in (0, None))


class Journal:
    def __init__(self, size: int, max_bytes: int = 1 << 62) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # the estimated total of the entries kept
        self._entries: collections.deque[Entry] = collections.deque()
        self._seq = 0
        #: called with each new entry after it is stored (the dashboard's live feed); keep them O(1)
        self.subscribers: list[Callable[[Entry], None]] = []
        self.resets = 0  # times cleared: the live feed tells its pages, which empty their lists
        self.cleared_at = 0  # the last sequence number given out before the latest clear
        #: per dialect, [requests, errors, faults] ever appended (not lowered by eviction nor clear: the
        #: dashboard's rates are differences of these)
        self.tally: dict[str, list[int]] = {}

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def append(self, entry: Entry) -> None:
        """Keep ``entry``, dropping the oldest while over either bound (the newest is always kept), then
        tell the subscribers."""
        entries = self._entries
        entries.append(entry)
        self.bytes += entry.size
        counts = self.tally.get(entry.dialect)
        if counts is None:
            counts = self.tally[entry.dialect] = [0, 0, 0]
        counts[0] += 1
        counts[1] += is_error(entry)
        counts[2] += entry.fault is not None
        while len(entries) > 1 and (len(entries) > self.size or self.bytes > self.max_bytes):
            self.bytes -= entries.popleft().size
        for notify in self.subscribers:
            notify(entry)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
        self.resets += 1
        self.cleared_at = self._seq

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    def newest(self, count: int) -> list[Entry]:
        """The newest ``count`` entries, oldest first, in time proportional to ``count``."""
        return list(itertools.islice(reversed(self._entries), count))[::-1]

    def query(
        self,
        *,
        dialect: str | None = None,
        operation: str | None = None,
        player: str | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Entries oldest first, filtered; ``limit`` keeps the newest ``limit`` of them."""
        found = [
            e
            for e in self._entries
            if (dialect is None or e.dialect == dialect)
            and (operation is None or e.operation == operation)
            and (player is None or e.player == player)
            and (rule is None or e.rule == rule)
        ]
        return found[-limit:] if limit else found
