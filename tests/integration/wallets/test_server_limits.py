"""Availability under misbehaving clients (issue 9 item 6), with real sockets against the real ``serve``:
stalled connections are closed, connections beyond the cap are refused, exhaustion is logged quietly."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator

import pytest

from simulator import config
from simulator.server import netserve
from simulator.testing import ServerThread

WAIT = 20.0  # an upper bound for what should happen at once; never a measured duration


def serving(**server_settings: float) -> Iterator[ServerThread]:
    server = ServerThread(config.from_dict({"server": server_settings}))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quick() -> Iterator[ServerThread]:
    yield from serving(keepalive_timeout=0.3, request_timeout=0.3)


@pytest.fixture(scope="module")
def capped() -> Iterator[ServerThread]:
    yield from serving(max_connections=4, max_connections_per_peer=4, keepalive_timeout=60)


def connect(server: ServerThread) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (bounded by WAIT)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_silent_connection_is_closed(quick: ServerThread) -> None:
    with connect(quick) as sock:
        assert read_all(sock) == b""


def test_partial_headers_are_not_waited_for(quick: ServerThread) -> None:
    with connect(quick) as sock:
        sock.sendall(b"POST /balance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        assert read_all(sock) == b""


def test_a_stalled_body_is_answered_and_closed(quick: ServerThread) -> None:
    with connect(quick) as sock:
        sock.sendall(b'POST /balance HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"user')
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b'"code":997' in answer and b"request_timeout" in answer


def test_an_idle_kept_alive_connection_is_closed(quick: ServerThread) -> None:
    with connect(quick) as sock:
        body = b'{"username":"m","agentId":"demo"}'
        sock.sendall(b"POST /balance HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b'"code":0' in answer


def test_connections_beyond_the_cap_are_refused_and_service_continues(capped: ServerThread) -> None:
    held = [connect(capped) for _ in range(4)]
    try:
        for sock in held:  # make sure the server has accepted each before the next is judged
            sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(capped) as extra:
            assert read_all(extra).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    for _ in range(200):  # the server notices the closed connections as it reads; bounded retries
        with connect(capped) as sock, contextlib.suppress(ConnectionResetError):  # reset: a 503 closed on us
            sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            if read_all(sock).startswith(b"HTTP/1.1 200"):
                break
    else:
        pytest.fail("the server never served again after the connections closed")


def test_the_cap_leaves_room_under_the_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert netserve.connection_cap(10**6) <= max(1, soft - netserve.FD_RESERVE) or soft == resource.RLIM_INFINITY
    assert netserve.connection_cap(3) == 3


async def test_exhaustion_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    netserve.throttled.__init__()  # type: ignore[misc]
    netserve.quiet_exhaustion(loop)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(5000):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "x")}
                )
        lines = [r for r in caplog.records if "EMFILE" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
    finally:
        loop.set_exception_handler(before)


def test_throttled_counts_what_it_did_not_log(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = netserve.Throttled(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for second in range(180):
            now[0] = float(second)
            for _ in range(100):
                throttle.report("EMFILE", "out of files")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and "(6000 times" in messages[1]
