"""Logging set-up for ``serve``: human lines, or one JSON object per line (``--log-format json``).

Every record, the simulator's own and its libraries' alike, goes through the same handler on stderr.
Structured fields travel in ``extra={"fields": {...}}``: the JSON formatter puts them at the top level
next to ``time``, ``level``, ``logger`` and ``message``; the text formatter shows the message only (callers
write the fields into it). orjson is already a dependency and writes exact Decimals through
:mod:`simulator.jsonio`, so a small ``logging.Formatter`` subclass does the job without another library.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

from simulator import jsonio

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields, "error"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return jsonio.dumps(line)


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Route every logger to stderr in ``fmt`` (``text`` or ``json``), replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
