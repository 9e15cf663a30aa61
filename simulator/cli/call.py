"""What ``xpro call``, ``fizzy call`` and ``ambslot call`` share: send one prepared request, print the answer
with the simulator's own headers (``X-Sim-Rule``, ``X-Sim-Detail``), and turn a failed exchange (no server,
a dropped or reset connection, an empty, broken or gateway answer) into one readable line.

Exit codes: 0 the dialect answered success, 1 it answered an error, 2 there was no usable answer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from simulator import jsonio
from simulator.dialects.client import Prepared, Reply

OK, REFUSED, NO_ANSWER = 0, 1, 2


def show(prepared: Prepared) -> None:
    """A prepared request as an integrator compares it with their own: notes, headers, body, curl."""
    for name, value in prepared.notes.items():
        print(f"{name}:\n  {value}")
    print("headers:")
    for name, value in prepared.headers.items():
        print(f"  {name}: {value}")
    print(f"body:\n  {prepared.body.decode()}")
    print(f"curl:\n  {prepared.curl()}")


def transport_failure(exc: BaseException, url: str) -> str:
    """One line for an exchange that produced no HTTP answer at all."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {url}: {exc.os_error.strerror or exc.os_error} (is the simulator running?)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{url}: the server closed the connection without answering (a 'drop' fault, or a crash)"
    if isinstance(exc, aiohttp.ClientOSError | ConnectionResetError):
        return f"{url}: the connection was reset (a 'reset' fault): {exc}"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"{url}: no answer in time (a delay longer than the client's timeout?)"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"not a URL: {url}"
    return f"{url}: {type(exc).__name__}: {exc}"


def broken_answer(reply: Reply) -> str | None:
    """One line when the answer is not the dialect's JSON (an injected fault or a proxy); None when it is."""
    rule = reply.headers.get("X-Sim-Rule")
    by = f" (rule {rule!r})" if rule else ""
    if reply.status == 502:
        return f"HTTP 502 from a gateway, not the wallet{by}: the request may or may not have been applied"
    if reply.body == "":
        return f"HTTP {reply.status} with an empty body{by}: the 'empty' fault"
    if isinstance(reply.body, str):
        return f"HTTP {reply.status} with a body that is not JSON{by}: {reply.body[:80]!r}"
    return None


def print_reply(reply: Reply) -> None:
    print(f"HTTP {reply.status}")
    for name in ("X-Sim-Rule", "X-Sim-Detail"):
        if name in reply.headers:
            print(f"{name}: {reply.headers[name]}")
    print(reply.body if isinstance(reply.body, str) else jsonio.pretty(reply.body))


async def exchange(
    send: Callable[[Prepared], Awaitable[Reply]],
    prepared: Prepared,
    succeeded: Callable[[Reply], bool],
    *,
    verbose: bool = False,
) -> tuple[int, Reply | None]:
    """Send, print, and judge: ``(exit code, the reply when there was a usable one)``."""
    if verbose:
        show(prepared)
    try:
        reply = await send(prepared)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {transport_failure(exc, prepared.url)}", file=sys.stderr)
        return NO_ANSWER, None
    broken = broken_answer(reply)
    if broken is not None:
        print(f"error: {broken}", file=sys.stderr)
        return NO_ANSWER, None
    print_reply(reply)
    return (OK if succeeded(reply) else REFUSED), reply


def run(call: Callable[[], Awaitable[int]], url: str) -> int:
    """Run one CLI call; a failure before the exchange (the XPro token request) is one line too."""

    async def guarded() -> int:
        try:
            return await call()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            print(f"error: {transport_failure(exc, url)}", file=sys.stderr)
            return NO_ANSWER

    return asyncio.run(guarded())


def code_of(reply: Reply, *path: str) -> Any:
    node: Any = reply.body
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node
