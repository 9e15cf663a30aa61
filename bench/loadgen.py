"""Load generator, run as its own process: replays prepared HTTP/1.1 requests over N keep-alive
connections for a fixed time and prints JSON stats (requests, failures, p50/p99 latency).

Everything costly (encryption, signatures, ids) was done before: this process only writes bytes and
parses status lines and Content-Length, so it stays cheaper than the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from collections.abc import Iterator


def read_requests(path: str) -> list[bytes]:
    out = []
    with open(path, "rb") as handle:
        data = handle.read()
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


class Conn(asyncio.Protocol):
    def __init__(self, gen: Loadgen) -> None:
        self.gen = gen
        self.buf = b""
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        request = self.gen.next_request()
        if request is None:
            assert self.transport is not None
            self.transport.close()
            return
        self.sent = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.gen.record(time.perf_counter() - self.sent, head[9:12] == b"200" and self.gen.ok(body))
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Loadgen:
    def __init__(self, requests: list[bytes], seconds: float, warmup: float, success: bytes) -> None:
        self.requests: Iterator[bytes] = iter(requests)
        self.deadline = 0.0
        self.measure_from = 0.0
        self.seconds, self.warmup = seconds, warmup
        self.success = success
        self.latencies: list[float] = []
        self.failures = 0
        self.exhausted = False

    def ok(self, body: bytes) -> bool:
        return not self.success or self.success in body

    def next_request(self) -> bytes | None:
        if time.perf_counter() >= self.deadline:
            return None
        try:
            return next(self.requests)
        except StopIteration:
            self.exhausted = True
            return None

    def record(self, latency: float, ok: bool) -> None:
        if time.perf_counter() < self.measure_from:
            return
        self.latencies.append(latency)
        if not ok:
            self.failures += 1

    async def run(self, host: str, port: int, connections: int) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        self.measure_from = start + self.warmup
        self.deadline = self.measure_from + self.seconds
        conns = [(await loop.create_connection(lambda: Conn(self), host, port))[1] for _ in range(connections)]
        await asyncio.gather(*(c.closed for c in conns))
        elapsed = min(time.perf_counter(), self.deadline) - self.measure_from
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "requests": n,
            "failures": self.failures,
            "rps": n / elapsed if elapsed > 0 else 0.0,
            "p50_ms": lat[n // 2] * 1000 if n else 0.0,
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
            "exhausted": float(self.exhausted),
        }


def main() -> None:
    path, host, port, connections, seconds, warmup, success = sys.argv[1:8]
    gen = Loadgen(read_requests(path), float(seconds), float(warmup), success.encode())
    print(json.dumps(asyncio.run(gen.run(host, int(port), int(connections)))))


if __name__ == "__main__":
    main()
