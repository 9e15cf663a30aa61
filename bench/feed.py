"""python -m bench.feed: does a dashboard watching the live feed slow the dialects, and what does it get?

AMBSlot /bet throughput with no page watching, then with ``--pages`` readers of ``GET /_sim/events``
(each in a thread of this process, counting batches, entries delivered and entries dropped), in
interleaved rounds, best of each. Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import urllib.request
from typing import Any

from bench.run import HOST, SCENARIO, Server, free_port, load, prepare_ambslot


class Page(threading.Thread):
    """One watching page: reads the feed until told to stop, counting what arrives."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.response = urllib.request.urlopen(base + "/_sim/events", timeout=30)
        self.stopped = threading.Event()
        self.batches = self.entries = self.dropped = self.bytes = 0

    def run(self) -> None:
        try:
            self.read()
        except (OSError, ValueError, AttributeError):  # closed under our feet by stop()
            if not self.stopped.is_set():
                raise

    def read(self) -> None:
        for line in self.response:
            if self.stopped.is_set():
                break
            self.bytes += len(line)
            if line.startswith(b"data: "):
                batch: dict[str, Any] = json.loads(line[6:])
                self.batches += 1
                self.entries += len(batch["entries"])
                self.dropped += int(batch["dropped"])

    def stop(self) -> None:
        self.stopped.set()
        self.response.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pages", type=int, default=4)
    args = parser.parse_args()
    budget = int((args.seconds + args.warmup) * 12_000)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as scenario:
        scenario.write(SCENARIO)
    port = free_port()
    base = f"http://{HOST}:{port}"
    sim = Server([sys.executable, "-m", "simulator", "serve", "--host", HOST, "--port", str(port), "--quiet",
                  "--scenario", scenario.name], port, "/_sim/health")  # fmt: skip
    best: dict[int, float] = {}
    seen: dict[str, float] = {}
    try:
        for _ in range(args.rounds):
            for pages in (0, args.pages):
                watching = [Page(base) for _ in range(pages)]
                for page in watching:
                    page.start()
                result = load(prepare_ambslot(base, port, budget), port, args, b'"code":0')
                for page in watching:
                    page.stop()
                best[pages] = max(best.get(pages, 0.0), result["rps"])
                if watching:
                    seconds = args.seconds + args.warmup
                    seen = {
                        "batches/s": sum(p.batches for p in watching) / len(watching) / seconds,
                        "entries/s": sum(p.entries for p in watching) / len(watching) / seconds,
                        "dropped/s": sum(p.dropped for p in watching) / len(watching) / seconds,
                        "KiB/s": sum(p.bytes for p in watching) / len(watching) / seconds / 1024,
                    }
    finally:
        sim.stop()
        os.unlink(scenario.name)
    print(
        f"\nAMBSlot /bet, {args.connections} connections, best of {args.rounds} interleaved {args.seconds:.0f} s runs"
    )
    print(f"  no page watching        {best[0]:8.0f} req/s")
    ratio = best[args.pages] / best[0]
    print(f"  {args.pages} pages watching        {best[args.pages]:8.0f} req/s  ({ratio:.2f} of the unwatched rate)")
    print("  each page received       " + ", ".join(f"{v:.0f} {k}" for k, v in seen.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
