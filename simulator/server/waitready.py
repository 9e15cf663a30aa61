"""``python -m simulator wait-ready URL --timeout 30``: block until a simulator answers ``/_sim/health`` with
``"status": "ok"``, for CI scripts in any language (a shell loop around curl, without curl).

Exit 0 with one line naming the simulator, or 1 with one line saying what the last attempt got.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

HEALTH = "/_sim/health"


def health_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith(HEALTH) else base + HEALTH


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """One attempt: ``(ready, what it got)``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return False, str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, a body that is not JSON
        return False, f"{type(exc).__name__}: {exc}"
    if isinstance(body, dict) and body.get("status") == "ok":
        return True, f"version {body.get('version')}, scenario {body.get('scenario')}"
    return False, f"answered {body!r}"


def wait(
    url: str,
    timeout: float,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, str]:
    """Probe until ready or ``timeout`` seconds have passed (at least one probe); the last result."""
    target = health_url(url)
    deadline = clock() + timeout
    while True:
        left = deadline - clock()
        ready, got = probe(target, max(0.1, min(5.0, left)))
        if ready:
            return True, f"ready: {target} ({got})"
        if clock() + interval > deadline:
            return False, f"not ready after {timeout:g}s: {target}: {got}"
        sleep(interval)
