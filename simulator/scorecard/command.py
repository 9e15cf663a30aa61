"""``python -m simulator report --url URL``: fetch a running simulator's scorecard and show it.

Exit status: 0 when the report is ok, 1 when it has failures, 2 when the simulator cannot be asked.
"""

from __future__ import annotations

import sys
import urllib.error
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from rich.console import Console

from simulator import jsonio
from simulator.scorecard import terminal

#: ``(url, format, admin token) -> (HTTP status, body text)`` of ``GET {url}/_sim/report?format=...``
Fetch = Callable[[str, str, str | None], tuple[int, str]]


def run(fetch: Fetch, url: str, fmt: str = "table", admin_token: str | None = None, show_passed: bool = False) -> int:
    try:
        status, text = fetch(url, "junit" if fmt == "junit" else "json", admin_token)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the simulator at {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"{url}/_sim/report answered {status}: {text}", file=sys.stderr)
        return 2
    if fmt == "junit":
        sys.stdout.write(text)
        return 0 if ET.fromstring(text.encode()).get("failures") == "0" else 1
    report: dict[str, Any] = jsonio.loads(text)
    if fmt == "json":
        print(jsonio.pretty(report))
    else:
        terminal.render(report, Console(), show_passed=show_passed)
    return 0 if report["ok"] else 1
