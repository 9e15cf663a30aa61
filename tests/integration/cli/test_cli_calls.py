"""``xpro call``, ``fizzy call`` and ``ambslot call`` as an integrator runs them: in their own process,
against a real server, with options anywhere, the simulator's headers shown, and one line for a failure."""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest

from tests.conftest import Start

FAULTS = """
name: cli
rules:
  - {name: broke, match: {dialect: fizzy, operation: balance, player: p-broke}, respond: {error: insufficient_funds}}
  - {name: gone, match: {dialect: ambslot, operation: balance, player: m-drop}, fault: drop}
  - {name: rst, match: {dialect: ambslot, operation: balance, player: m-reset}, fault: reset}
  - {name: hollow, match: {dialect: ambslot, operation: balance, player: m-empty}, fault: empty}
  - {name: halved, match: {dialect: ambslot, operation: balance, player: m-malformed}, fault: malformed}
  - {name: proxy, match: {dialect: ambslot, operation: balance, player: m-gateway}, fault: gateway}
"""


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def balance(player: str) -> str:
    return json.dumps({"username": player, "agentId": "demo"})


async def test_options_anywhere_and_the_simulator_headers_are_printed(start: Start) -> None:
    h = await start(scenario=FAULTS)
    body = '{"playerId":"p-1","sessionId":"s-1","currency":"EUR"}'
    code, out, err = await cli("fizzy", "call", "/wallet/balance", body, "--url", h.url)
    assert code == 0, err
    assert out.startswith("HTTP 200\n") and '"balance": 1000' in out
    code, out, _ = await cli("fizzy", "--url", h.url, "call", "-v", "/wallet/balance", body.replace("p-1", "p-broke"))
    assert code == 1
    assert "X-Sim-Rule: broke\n" in out and "X-Sim-Detail: " in out and "ERROR_TRANSACTION_INSUFFICIENT_FUNDS" in out
    assert "curl:" in out  # -v shows the request, wherever it was given
    code, out, _ = await cli("ambslot", "call", "--url", h.url, "/balance", balance("member001"))
    assert code == 0 and '"code": 0' in out
    code, out, err = await cli(
        "xpro", "call", "--plaintext", '{"username":"nobody"}', "--url", h.url, "--path", "/v2/members/balance"
    )
    assert code == 1, err
    assert '"code": 8' in out and "X-Sim-Detail: " in out


@pytest.mark.parametrize(
    ("player", "says"),
    [
        ("m-drop", "closed the connection without answering"),
        ("m-reset", "connection was reset"),
        ("m-empty", "empty body (rule 'hollow')"),
        ("m-malformed", "body that is not JSON (rule 'halved')"),
        ("m-gateway", "HTTP 502 from a gateway, not the wallet (rule 'proxy')"),
    ],
)
async def test_injected_faults_are_one_readable_line(start: Start, player: str, says: str) -> None:
    h = await start(scenario=FAULTS)
    code, out, err = await cli("ambslot", "call", "/balance", balance(player), "--url", h.url)
    assert code == 2 and out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and says in err


async def test_no_server_is_one_line_too() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        for args in (("fizzy", "call"), ("ambslot", "call"), ("xpro", "call")):
            code, _, err = await cli(*args, "--url", url)
            assert code == 2 and "Traceback" not in err, err
            assert err.startswith(f"error: cannot connect to {url}") and "is the simulator running?" in err
