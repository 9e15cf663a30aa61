"""``python -m simulator wait-ready URL --timeout 30``: block until a simulator answers ``/_sim/health`` with
``"status": "ok"``, for CI scripts in any language (a shell loop around curl, without curl).

Exit 0 with one line naming the simulator, or 1 with one line saying what the last attempt got.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simulator.testing import Control

HEALTH = "/_sim/health"


def health_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith(HEALTH) else base + HEALTH


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """One attempt at the health URL: ``(ready, what it got)``."""
    return Control(url.removesuffix(HEALTH), timeout=timeout).probe()


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
