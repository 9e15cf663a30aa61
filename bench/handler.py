"""The simulator's own share of a request, without network or aiohttp's parser: microseconds per call of
``Dialect.handle`` (decode, scenario engine, ledger, render, journal) on prepared requests, in-process.

Load-generator figures on a shared two-core machine swing by tens of percent; this one is steady (best of
several passes), so it shows what a change to the request path saves. ``make bench`` prints it; alone:

    .venv/bin/python bench/handler.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from decimal import Decimal
from typing import Any

from aiohttp import streams, test_utils, web

from simulator.config import load as load_config
from simulator.dialects.ambslot import Ambslot
from simulator.dialects.base import Dialect
from simulator.dialects.client import AmbslotClient, FizzyClient, Prepared, XproClient
from simulator.dialects.fizzy import Fizzy
from simulator.dialects.xpro import Xpro
from simulator.scenarios import loader
from simulator.service import Simulator

BASE = "http://127.0.0.1:8080"
PLAYERS = 50


def scenario_text() -> str:
    return "name: bench\nplayers:\n" + "".join(
        f"  - {{dialect: xpro, username: b{n}, balance: 0}}\n"
        f"  - {{dialect: fizzy, playerId: b{n}, balance: 1000000000}}\n"
        f"  - {{dialect: ambslot, username: b{n}, balance: 1000000000}}\n"
        for n in range(PLAYERS)
    )


def prepared(dialect: Dialect, count: int) -> list[Prepared]:
    one = Decimal("0.01")
    if isinstance(dialect, Xpro):
        xpro = XproClient(BASE)
        token, _ = dialect.issue_token("demo")
        return [
            xpro.prepare(
                "/v2/members/transaction",
                {"username": f"b{i % PLAYERS}", "amount": one, "transId": str(uuid.uuid4())},
                token=token,
            )
            for i in range(count)
        ]
    if isinstance(dialect, Fizzy):
        fizzy = FizzyClient(BASE)
        return [
            fizzy.prepare(
                "/wallet/withdraw",
                FizzyClient.money(f"b{i % PLAYERS}", "0.01", txn=str(uuid.uuid4()), session=f"s{i % PLAYERS}"),
            )
            for i in range(count)
        ]
    amb = AmbslotClient(BASE)
    batch = uuid.uuid4().hex[:8]
    return [amb.prepare("/bet", amb.fields(f"b{i % PLAYERS}", f"{batch}-{i}", one)) for i in range(count)]


class _Protocol:
    """What a StreamReader asks of its protocol (a Mock would cost more than the code measured)."""

    _reading_paused = False

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def mocked(request: Prepared) -> web.Request:
    payload = streams.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    payload.feed_data(request.body)
    payload.feed_eof()
    path = request.url[len(BASE) :]
    headers = {**request.headers, "Host": "127.0.0.1:8080", "Content-Length": str(len(request.body))}
    return test_utils.make_mocked_request("POST", path, headers=headers, payload=payload)


async def per_request(dialect: Dialect, path: str, count: int, passes: int) -> float:
    """Best microseconds per ``handle`` call over ``passes`` passes of ``count`` fresh requests."""
    best = float("inf")
    for _ in range(passes):
        requests = [mocked(p) for p in prepared(dialect, count)]
        started = time.perf_counter()
        for request in requests:
            response = await dialect.handle(request, path)
            assert response.status == 200, f"{dialect.name} answered {response.status}"
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    return best


async def measure(count: int = 2000, passes: int = 5) -> dict[str, float]:
    settings = load_config(None)
    settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, log_requests=False))
    sim = Simulator(settings, loader.parse(scenario_text(), "(bench)", settings))  # journal on, as served
    results: dict[str, Any] = {}
    for dialect, path in (
        (Xpro(sim), "/v2/members/transaction"),
        (Fizzy(sim), "/wallet/withdraw"),
        (Ambslot(sim), "/bet"),
    ):
        results[f"{dialect.name} {path}"] = await per_request(dialect, path, count, passes)
    return results


def main() -> None:
    for name, us in asyncio.run(measure()).items():
        print(f"{name:32} {us:7.1f} us per request (handler only, in-process)")


if __name__ == "__main__":
    main()
