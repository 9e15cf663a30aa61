"""``python -m simulator report --url URL``: fetch a running simulator's scorecard and show it.

Exit status: 0 when the report is ok, 1 when it has failures, 2 when the simulator cannot be asked.
"""

from __future__ import annotations

import sys
import urllib.error
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from simulator import jsonio, output
from simulator.scorecard import terminal
from simulator.visible import xml_text

#: ``(url, format, admin token) -> (HTTP status, body text)`` of ``GET {url}/_sim/report?format=...``
Fetch = Callable[[str, str, str | None], tuple[int, str]]


def run(
    fetch: Fetch, url: str, fmt: str | None = None, admin_token: str | None = None, show_passed: bool = False
) -> int:
    fmt = output.choose(fmt)
    try:
        status, text = fetch(url, "junit" if fmt == "junit" else "json", admin_token)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the simulator at {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"{url}/_sim/report answered {status}: {text}", file=sys.stderr)
        return 2
    if fmt == "junit":
        text = xml_text(text)  # a simulator from before the escaping may quote control characters raw
        sys.stdout.write(text)
        try:
            failures = ET.fromstring(text.encode()).get("failures")
        except ET.ParseError as exc:
            print(f"{url}/_sim/report?format=junit is not valid XML: {exc}", file=sys.stderr)
            return 2
        return 0 if failures == "0" else 1
    report: dict[str, Any] = jsonio.loads(text)
    if fmt == "json":
        print(jsonio.pretty(report))
    else:
        terminal.render(report, output.console(), show_passed=show_passed, fmt=fmt)
    return 0 if report["ok"] else 1
