"""server.logs: one JSON record per line with the record's fields."""

from __future__ import annotations

import json
import logging

from simulator.server.logs import JsonFormatter


def test_a_json_line_carries_the_fields_but_never_overrides_the_basics() -> None:
    record = logging.LogRecord("simulator.access", logging.INFO, __file__, 1, "served %s", ("x",), None)
    record.fields = {"dialect": "fizzy", "message": "not this one"}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "served x" and line["dialect"] == "fizzy" and line["logger"] == "simulator.access"
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
