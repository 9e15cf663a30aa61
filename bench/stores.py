"""make bench (second part): each dialect's money endpoint on the in-memory store, on a Redis store with one
worker, and on a Redis store with two workers (``--workers 2``, one port), side by side.

It starts its own ``redis-server`` (Debian's, as the tests do) on a free loopback port with no persistence,
and stops it by its PID. The load is bench/run.py's: requests prepared before the timed part, replayed by
bench/loadgen.py in another process, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as bench

DIALECTS: list[tuple[str, Callable[[str, int, int], list[bytes]], bytes]] = [
    ("XPro /v2/members/transaction", bench.prepare_xpro, b'"code":0'),
    ("Fizzy /wallet/withdraw", bench.prepare_fizzy, b'"balance"'),
    ("AMBSlot /bet", bench.prepare_ambslot, b'"code":0'),
]


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: sudo apt-get install -y redis-server")
    port = bench.free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", bench.HOST, "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((bench.HOST, port), 0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise SystemExit("redis-server did not start")


def measure(extra: list[str], scenario: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    port = bench.free_port()
    argv = [sys.executable, "-m", "simulator", "serve", "--host", bench.HOST, "--port", str(port), "--quiet"]
    server = bench.Server([*argv, "--scenario", scenario, *extra], port, "/_sim/health")
    base = f"http://{bench.HOST}:{port}"
    budget = int((args.seconds + args.warmup) * 6_000)
    try:
        return {name: bench.load(prepare(base, port, budget), port, args, ok) for name, prepare, ok in DIALECTS}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        scenario = os.path.join(directory, "bench.yaml")
        Path(scenario).write_text(bench.SCENARIO)
        redis, redis_port = start_redis(directory)
        try:
            url = f"redis://{bench.HOST}:{redis_port}/0"
            configs = [
                ("memory", []),
                ("redis, 1 worker", ["--store", f"{url}?prefix=one"]),
                ("redis, 2 workers", ["--store", f"{url}?prefix=two", "--workers", "2"]),
            ]
            results = {label: measure(extra, scenario, args) for label, extra in configs}
        finally:
            redis.kill()
            redis.wait(10)
    bench.CONSOLE.print(
        f"\nStores: {os.cpu_count()} cores, {args.connections} connections, {args.seconds:.0f} s per run"
    )
    table = Table()
    table.add_column("endpoint")
    table.add_column("store")
    for column in ("req/s", "p50 ms", "p99 ms", "failed"):
        table.add_column(column, justify="right")
    for name, _, _ in DIALECTS:
        for label, _ in configs:
            r = results[label][name]
            figures = (f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{int(r['failures'])}")
            table.add_row(name, label, *figures)
        added = results["redis, 1 worker"][name]["p50_ms"] - results["memory"][name]["p50_ms"]
        table.add_row("", "redis adds (p50)", "", f"{added:.2f}", "", "", end_section=True)
    bench.CONSOLE.print(table)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
