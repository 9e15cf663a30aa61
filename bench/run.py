"""make bench: throughput and latency of each dialect's money endpoint against a bare aiohttp handler in
the same run, on an empty ledger and on one holding a million transactions (p99 must not climb), start-up
time, memory at a million transactions (measured), and the accuracy of injected delay.

The server and the bare handler each run in their own process; the load comes from bench/loadgen.py in
another process, replaying requests prepared before the timed part (unique transaction ids, fresh nonces
and signatures). Only loopback is used; every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from simulator.dialects.client import AmbslotClient, FizzyClient, Prepared, XproClient

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PLAYERS = 50
#: tables as rich draws them; a wide page when the output is a file (make bench > figures.txt)
CONSOLE = Console(width=None if sys.stdout.isatty() else 120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> float:
    """Seconds until ``url`` answers 200 (polled every millisecond)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw(prepared: Prepared, port: int) -> bytes:
    path = prepared.url.split(f":{port}", 1)[1]
    headers = {**prepared.headers, "Host": f"{HOST}:{port}", "Content-Length": str(len(prepared.body))}
    head = f"{prepared.method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + prepared.body


def write_requests(requests: list[bytes]) -> str:
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".bin", delete=False) as handle:
        for request in requests:
            handle.write(struct.pack(">I", len(request)) + request)
    return handle.name


def load(
    requests: list[bytes], port: int, args: argparse.Namespace, success: bytes, seconds: float | None = None
) -> dict[str, float]:
    path = write_requests(requests)
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "loadgen.py"), path, HOST, str(port), str(args.connections),
             str(seconds or args.seconds), str(args.warmup), success.decode()],
            capture_output=True, text=True, timeout=(seconds or args.seconds) + args.warmup + 120, check=True,
        )  # fmt: skip
    finally:
        os.unlink(path)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def post(url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Server:
    def __init__(self, argv: list[str], port: int, ready_path: str, timeout: float = 30.0) -> None:
        self.port = port
        self.started = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_ready(f"http://{HOST}:{port}{ready_path}", timeout)
        self.startup = time.perf_counter() - self.started

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


SCENARIO = "name: bench\nplayers:\n" + "".join(
    f"  - {{dialect: xpro, username: b{n}, balance: 0}}\n"
    f"  - {{dialect: fizzy, playerId: b{n}, balance: 1000000000}}\n"
    f"  - {{dialect: ambslot, username: b{n}, balance: 1000000000}}\n"
    for n in range(PLAYERS)
)


def prepare_xpro(base: str, port: int, count: int) -> list[bytes]:
    client = XproClient(base)
    auth = client.prepare("/v2/auth", {"agentId": "demo", "secret": "demo-secret"})
    reply = post(base + "/v2/auth", auth.body, auth.headers)
    token = reply["data"]["accessToken"]
    one = Decimal("0.01")
    payloads = ({"username": f"b{i % PLAYERS}", "amount": one, "transId": str(uuid.uuid4())} for i in range(count))
    return [raw(client.prepare("/v2/members/transaction", p, token=token), port) for p in payloads]


def prepare_fizzy(base: str, port: int, count: int) -> list[bytes]:
    client = FizzyClient(base)
    payloads = (
        FizzyClient.money(f"b{i % PLAYERS}", "0.01", txn=str(uuid.uuid4()), session=f"s{i % PLAYERS}", round_id=f"r{i}")
        for i in range(count)
    )
    return [raw(client.prepare("/wallet/withdraw", p), port) for p in payloads]


def prepare_ambslot(base: str, port: int, count: int) -> list[bytes]:
    client = AmbslotClient(base)
    rounds = uuid.uuid4().hex[:8]  # unique per batch, so several batches never share a round
    payloads = (client.fields(f"b{i % PLAYERS}", f"{rounds}-{i}", "0.01", txn=str(uuid.uuid4())) for i in range(count))
    return [raw(client.prepare("/bet", p), port) for p in payloads]


def prepare_bare(port: int, count: int) -> list[bytes]:
    headers = {"Content-Type": "application/json"}
    return [raw(Prepared("POST", f"http://{HOST}:{port}/bare", headers, b'{"a":1}'), port)] * count


def measure_startup(argv: list[str], ready_path: str) -> float:
    """Seconds from starting ``argv`` (a server on the port appended to it) to its first answer on
    ``ready_path``; the server is stopped afterwards."""
    port = free_port()
    server = Server([*argv, str(port)], port, ready_path)
    server.stop()
    return server.startup


def put_scenario(base: str, text: str) -> None:
    headers = {"Content-Type": "application/yaml"}
    request = urllib.request.Request(base + "/_sim/scenario", data=text.encode(), method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def start_sim(scenario: str, preload: int) -> Server:
    """The simulator as ``serve`` runs it (bench/server.py), with ``preload`` transactions once it is up."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "server.py"), str(port), scenario, str(preload)]
    return Server(argv, port, "/_sim/health", timeout=60 + preload / 2_000)


def grow_over_http(sim: Server, target: int, args: argparse.Namespace) -> int:
    """AMBSlot bets over HTTP until the ledger holds ``target`` transactions."""
    base = f"http://{HOST}:{sim.port}"
    applied = 0
    no_warmup = argparse.Namespace(**{**vars(args), "warmup": 0})
    while applied < target:
        batch = min(target - applied, 125_000)
        load(prepare_ambslot(base, sim.port, batch), sim.port, no_warmup, b'"code":0', seconds=600)
        applied = int(json.loads(urllib.request.urlopen(base + "/_sim/invariants", timeout=300).read())["transactions"])
    return applied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per throughput run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each target keeps its best")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--transactions", type=int, default=1_000_000, help="in the big ledger")
    parser.add_argument(
        "--grow-over-http",
        action="store_true",
        help="apply the big ledger's transactions as AMBSlot bets over HTTP (minutes) instead of preloading "
        "them through the ledger API (bench/server.py)",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    budget = int((args.seconds + args.warmup) * 12_000)

    serve = [sys.executable, "-m", "simulator", "serve", "--host", HOST, "--quiet"]
    happy_path = [*serve, "--scenario", "builtin:happy_path"]
    startup_plain = min(measure_startup([*serve, "--port"], "/_sim/health") for _ in range(3))
    startup_scenario = min(measure_startup([*happy_path, "--port"], "/_sim/health") for _ in range(3))
    # the bare aiohttp server, measured alike: what importing aiohttp and binding cost on this machine
    startup_bare = min(measure_startup([sys.executable, str(ROOT / "bench" / "bare.py")], "/bare") for _ in range(3))

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as scenario:
        scenario.write(SCENARIO)
    servers: list[Server] = []
    try:
        grow_started = time.perf_counter()
        big = start_sim(scenario.name, 0 if args.grow_over_http else args.transactions)
        servers.append(big)
        applied = grow_over_http(big, args.transactions, args) if args.grow_over_http else args.transactions
        grow_seconds = time.perf_counter() - grow_started
        rss_big = rss_mb(big.proc.pid)
        fresh = start_sim(scenario.name, 0)
        servers.append(fresh)
        rss_fresh = rss_mb(fresh.proc.pid)
        bare_port = free_port()
        bare = Server([sys.executable, str(ROOT / "bench" / "bare.py"), str(bare_port)], bare_port, "/bare")
        servers.append(bare)

        def dialect_runs(sim: Server) -> list[tuple[str, Callable[[], list[bytes]], int, bytes]]:
            base, port = f"http://{HOST}:{sim.port}", sim.port
            return [
                ("XPro /v2/members/transaction", lambda: prepare_xpro(base, port, budget), port, b'"code":0'),
                ("Fizzy /wallet/withdraw", lambda: prepare_fizzy(base, port, budget), port, b'"balance"'),
                ("AMBSlot /bet", lambda: prepare_ambslot(base, port, budget), port, b'"code":0'),
            ]

        runs = [("bare aiohttp handler", "fresh", lambda: prepare_bare(bare_port, budget * 3), bare_port, b"")]
        for (name, *fresh_run), (_, *big_run) in zip(dialect_runs(fresh), dialect_runs(big), strict=True):
            runs += [(name, "fresh", *fresh_run), (name, "big", *big_run)]  # type: ignore[list-item]
        # Interleaved rounds, best of them for every target alike: this VM's speed drifts by tens of percent
        # between runs, and a baseline measured once would make every ratio depend on one lucky or unlucky run.
        best: dict[tuple[str, str], dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, ledger, prepare, target, success in runs:
                result = load(prepare(), target, args, success)
                if (name, ledger) not in best or result["rps"] > best[(name, ledger)]["rps"]:
                    best[(name, ledger)] = result
        rss_loaded = rss_mb(big.proc.pid)  # with the journal full as well

        # injected delay: 50 ms on AMBSlot /balance under the same concurrency
        base = f"http://{HOST}:{fresh.port}"
        put_scenario(base, "name: delay\nrules:\n  - {match: {dialect: ambslot, operation: balance}, delay: 50ms}\n")
        body = b'{"username":"b1","agentId":"demo"}'
        balance = raw(Prepared("POST", base + "/balance", {"Content-Type": "application/json"}, body), fresh.port)
        delayed = load([balance] * 200_000, fresh.port, args, b'"code":0', seconds=5)

        checked = time.perf_counter()
        with urllib.request.urlopen(f"http://{HOST}:{big.port}/_sim/invariants", timeout=300) as response:
            books = json.loads(response.read())
        check_seconds = time.perf_counter() - checked
    finally:
        for server in servers:
            server.stop()
        os.unlink(scenario.name)

    report(args, best, (startup_plain, startup_scenario, startup_bare), delayed)
    how = "AMBSlot bets over HTTP" if args.grow_over_http else "preloaded through the ledger API (bench/server.py)"
    print(f"ledger of {applied:,} transactions ({how}, {grow_seconds:.0f} s): server RSS {rss_big:.0f} MB "
          f"(fresh server {rss_fresh:.0f} MB: {(rss_big - rss_fresh) * 1048576 / max(1, applied):.0f} bytes per "
          f"transaction); {rss_loaded:.0f} MB after the runs above ({books['transactions']:,} transactions, "
          "journal full)")  # fmt: skip
    print(f"  /_sim/invariants on it: ok={books['ok']} in {check_seconds:.1f} s")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    own = subprocess.run([sys.executable, str(ROOT / "bench" / "handler.py")], env=env, capture_output=True, text=True,
                         timeout=600, check=True)  # fmt: skip
    print("\nthe simulator's own share of a request (bench/handler.py, best of 5 passes of 2,000):")
    print(own.stdout, end="")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


def report(
    args: argparse.Namespace,
    best: dict[tuple[str, str], dict[str, float]],
    startups: tuple[float, float, float],
    delayed: dict[str, float],
) -> None:
    bare_rps = best[("bare aiohttp handler", "fresh")]["rps"]
    CONSOLE.print(
        f"\nWallet simulator benchmark: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.connections} connections, "
        f"best of {args.rounds} interleaved {args.seconds:.0f} s runs"
    )
    table = Table()
    table.add_column("endpoint")
    for column in ("ledger", "req/s", "p50 ms", "p99 ms", "vs bare", "failed"):
        table.add_column(column, justify="right")
    for (name, ledger), r in best.items():
        shown = "empty" if ledger == "fresh" else f"{args.transactions:,}"
        table.add_row(
            name, shown, f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
            f"{r['rps'] / bare_rps:.2f}", f"{int(r['failures'])}",
        )  # fmt: skip
    plain, scenario, bare = startups
    measures = Table("measure", "figure")
    measures.add_row("start-up to first response, no scenario", f"{plain * 1000:.0f} ms")
    measures.add_row("start-up to first response, happy-path file", f"{scenario * 1000:.0f} ms")
    measures.add_row("the bare aiohttp server, measured alike", f"{bare * 1000:.0f} ms")
    measures.add_row(
        f"injected 50 ms delay, {args.connections} connections",
        f"p50 {delayed['p50_ms']:.1f} ms, p99 {delayed['p99_ms']:.1f} ms",
    )
    CONSOLE.print(table)
    CONSOLE.print(measures)


if __name__ == "__main__":
    raise SystemExit(main())
