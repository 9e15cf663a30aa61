"""make bench: throughput and latency of each dialect's money endpoint against a bare aiohttp handler in
the same run, start-up time, memory after a million transactions, and the accuracy of injected delay.

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

from simulator.client import AmbslotClient, FizzyClient, Prepared, XproClient

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PLAYERS = 50


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
    def __init__(self, argv: list[str], port: int, ready_path: str) -> None:
        self.port = port
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(f"http://{HOST}:{port}{ready_path}")
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


def measure_startup(args: list[str]) -> float:
    port = free_port()
    server = Server([sys.executable, "-m", "simulator", "serve", "--host", HOST, "--port", str(port), "--quiet", *args],
                    port, "/_sim/health")  # fmt: skip
    server.stop()
    return server.startup


def put_scenario(base: str, text: str) -> None:
    request = urllib.request.Request(base + "/_sim/scenario", data=text.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per throughput run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each target keeps its best")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--transactions",
        type=int,
        default=500_000,
        help="applied before measuring memory; the figure for 1,000,000 is extrapolated from two measured points "
        "unless this is 1000000 or more (which takes about 4 minutes more)",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    budget = int((args.seconds + args.warmup) * 12_000)

    startup_plain = min(measure_startup([]) for _ in range(3))
    startup_scenario = min(measure_startup(["--scenario", "builtin:happy_path"]) for _ in range(3))

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as scenario:
        scenario.write(SCENARIO)
    port = free_port()
    sim = Server([sys.executable, "-m", "simulator", "serve", "--host", HOST, "--port", str(port), "--quiet",
                  "--scenario", scenario.name], port, "/_sim/health")  # fmt: skip
    bare_port = free_port()
    bare = Server([sys.executable, str(ROOT / "bench" / "bare.py"), str(bare_port)], bare_port, "/bare")
    base = f"http://{HOST}:{port}"
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        runs: list[tuple[str, Callable[[], list[bytes]], int, bytes]] = [
            ("bare aiohttp handler", lambda: prepare_bare(bare_port, budget * 3), bare_port, b""),
            ("XPro /v2/members/transaction", lambda: prepare_xpro(base, port, budget), port, b'"code":0'),
            ("Fizzy /wallet/withdraw", lambda: prepare_fizzy(base, port, budget), port, b'"balance"'),
            ("AMBSlot /bet", lambda: prepare_ambslot(base, port, budget), port, b'"code":0'),
        ]
        # Interleaved rounds, best of them for every target alike: this VM's speed drifts by tens of percent
        # between runs, and a baseline measured once would make every ratio depend on one lucky or unlucky run.
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, prepare, target, success in runs:
                result = load(prepare(), target, args, success)
                if name not in best or result["rps"] > best[name]["rps"]:
                    best[name] = result
        rows = [(name, best[name]) for name, *_ in runs]

        # injected delay: 50 ms on AMBSlot /balance under the same concurrency
        put_scenario(base, "name: delay\nrules:\n  - {match: {dialect: ambslot, operation: balance}, delay: 50ms}\n")
        body = b'{"username":"b1","agentId":"demo"}'
        balance = raw(Prepared("POST", base + "/balance", {"Content-Type": "application/json"}, body), port)
        delayed = load([balance] * 200_000, port, args, b'"code":0', seconds=5)
        put_scenario(base, SCENARIO.replace("name: bench", "name: memory"))  # no rule; keeps the ledger growing

        # memory after N applied transactions (AMBSlot bets, the cheapest), the journal bounded
        mem_started = time.perf_counter()
        with urllib.request.urlopen(base + "/_sim/invariants", timeout=60) as response:
            applied = int(json.loads(response.read())["transactions"])
        no_warmup = argparse.Namespace(**{**vars(args), "warmup": 0})
        samples: list[tuple[int, float]] = []
        while applied < args.transactions:
            batch = min(args.transactions - applied, 125_000)
            load(prepare_ambslot(base, port, batch), port, no_warmup, b'"code":0', seconds=600)
            with urllib.request.urlopen(base + "/_sim/invariants", timeout=120) as response:
                report = json.loads(response.read())
            applied = int(report["transactions"])
            samples.append((applied, rss_mb(sim.proc.pid)))
        mem_seconds = time.perf_counter() - mem_started
        rss = rss_mb(sim.proc.pid)
        (n1, r1), (n2, r2) = samples[len(samples) // 2 - 1] if len(samples) > 1 else (0, rss), samples[-1]
        per_txn = (r2 - r1) / (n2 - n1) if n2 > n1 else 0.0  # MB per transaction, between two measured points
        at_million = rss if applied >= 1_000_000 else r2 + per_txn * (1_000_000 - n2)
        with urllib.request.urlopen(base + "/_sim/health", timeout=60) as response:
            response.read()
    finally:
        sim.stop()
        bare.stop()
        os.unlink(scenario.name)

    bare_rps = rows[0][1]["rps"]
    print(
        f"\nWallet simulator benchmark: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {args.connections} connections, "
        f"best of {args.rounds} interleaved {args.seconds:.0f} s runs\n"
    )
    print(f"{'endpoint':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'failed':>7}")
    for name, r in rows:
        ratio = r["rps"] / bare_rps
        print(f"{name:32} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {ratio:8.2f} {int(r['failures']):7d}")
    print()
    print(f"start-up to first response, no scenario      {startup_plain * 1000:6.0f} ms")
    print(f"start-up to first response, happy-path file  {startup_scenario * 1000:6.0f} ms")
    print(f"injected 50 ms delay, {args.connections} connections          p50 {delayed['p50_ms']:.1f} ms, "
          f"p99 {delayed['p99_ms']:.1f} ms")  # fmt: skip
    print(f"server RSS after {applied:,} transactions  {rss:6.0f} MB (journal bounded; {mem_seconds:.0f} s)")
    if applied < 1_000_000:
        print(
            f"  {per_txn * 1048576:.0f} bytes per transaction -> about {at_million:.0f} MB at 1,000,000 (extrapolated)"
        )
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
