"""``serve --workers N``: N processes on one port (``SO_REUSEPORT``: the kernel spreads connections), all on
one shared store. The parent reserves the port, starts the workers, prints one banner when every worker
listens, forwards SIGTERM/SIGINT and exits with the worst exit status of its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import queue
import signal
import sys
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from simulator import store
from simulator.config import Settings
from simulator.scenarios.model import Scenario
from simulator.server import logs, serve

START_TIMEOUT = 30.0  # seconds every worker gets to connect to the store and listen


def _worker(settings: Settings, scenario: Scenario, index: int, ready: Any) -> None:
    logs.configure(settings.server.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent tells us to stop (SIGTERM), once

    kept: list[Any] = []

    def listening(base: str) -> None:  # with the scenario the store holds (a joining replica serves that one)
        ready.put((index, base, None, kept[0].scenario if index == 0 else None))

    try:
        asyncio.run(
            serve.serve(
                settings,
                scenario,
                admin_token=settings.server.admin_token,
                ready=listening,
                keep=kept.append,
                worker=index,
            )
        )
    except (store.StoreError, OSError) as exc:
        ready.put((index, None, str(exc), None))
        sys.exit(1)


def run(settings: Settings, scenario: Scenario, count: int) -> int:
    try:
        store.check_reachable(settings)
    except store.StoreError as exc:
        return serve.refuse(settings.server.log_format, f"refusing to start: {exc}", [], 1)
    server = settings.server
    try:  # bound, never listening: keeps the port (and resolves port 0) while the workers bind it too
        reserve = serve.bind(server.host, server.port, reuse_port=True, listen=False)
    except OSError as exc:
        print(f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with reserve:
        port = reserve.getsockname()[1]
        settings = dataclasses.replace(settings, server=dataclasses.replace(server, port=port))
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        processes = [
            context.Process(target=_worker, args=(settings, scenario, i, ready), name=f"worker-{i}")
            for i in range(count)
        ]
        for process in processes:
            process.start()
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        process.terminate()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            base, served = _wait_ready(ready, processes, count)
            if base is None:
                stop(signal.SIGTERM, None)
            else:
                shown = serve.banner(settings, served or scenario, base, server.admin_token, workers=count)
                serve.announce(shown, server.log_format, base)
            for process in processes:
                process.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    codes = [p.exitcode or 0 for p in processes]
    return 1 if base is None else max([0, *(c for c in codes if c > 0)])


def _wait_ready(ready: Any, processes: Sequence[BaseProcess], count: int) -> tuple[str | None, Scenario | None]:
    """The base URL (and the scenario served) once every worker listens; None (after saying why) if one
    failed or died."""
    deadline = time.monotonic() + START_TIMEOUT
    base: str | None = None
    served: Scenario | None = None
    started = 0
    while started < count:
        try:
            index, url, error, scenario = ready.get(timeout=0.2)
        except queue.Empty:
            if any(p.exitcode is not None for p in processes) or time.monotonic() > deadline:
                print("refusing to start: a worker did not start", file=sys.stderr)
                return None, None
            continue
        if error is not None:
            print(f"refusing to start: worker {index}: {error}", file=sys.stderr)
            return None, None
        base, served = url, served or scenario
        started += 1
    return base, served
