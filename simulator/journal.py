"""The journal: a bounded record of every dialect request (a ring buffer; its size is a setting).

Each entry keeps the decoded request (for XPro the decrypted plaintext), the rule that fired, the response
status and body, and the time taken, so tests can assert on what really crossed the wire.
"""

from __future__ import annotations

import collections
import datetime as dt
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
        }


class Journal:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: collections.deque[Entry] = collections.deque(maxlen=size)
        self._seq = 0
        #: called with each new entry after it is stored (the dashboard's live feed); keep them O(1)
        self.subscribers: list[Callable[[Entry], None]] = []

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def append(self, entry: Entry) -> None:
        self._entries.append(entry)
        for notify in self.subscribers:
            notify(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

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
