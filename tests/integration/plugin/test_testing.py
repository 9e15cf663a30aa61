"""simulator.testing: the in-process runner and the control client the plugin, CLI and tests share."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from simulator import config
from simulator.testing import Control, ControlError, ServerThread, WalletSimulator, fetch_report


def test_a_server_thread_and_its_control_client() -> None:
    server = ServerThread(config.from_dict({"server": {"admin_token": "a-long-token"}}))
    url = server.start()
    try:
        assert Control(url).probe()[0]  # health needs no token
        control = Control(url, admin_token="a-long-token")
        assert control.health()["status"] == "ok"
        control.set_player("fizzy", "p-1", balance="12.50")
        assert control.player("fizzy", "p-1")["balance"] == Decimal("12.50")
        control.reset()
        with pytest.raises(ControlError, match="404"):
            control.player("fizzy", "p-1")
        with pytest.raises(ControlError, match="401"):
            Control(url).players()
        status, text = fetch_report(url, "json", "a-long-token")
        assert status == 200 and '"ok"' in text
    finally:
        server.stop()


def test_the_session_handle_puts_the_scenario_back_on_reset() -> None:
    server = ServerThread(config.from_dict({}))
    url = server.start()
    try:
        sim = WalletSimulator(url, "name: base\n")
        sim.load_scenario("builtin:insufficient_funds")
        assert sim.health()["scenario"] != "base"
        sim.reset()
        assert sim.health()["scenario"] == "base"
    finally:
        server.stop()


def test_probe_of_a_closed_port_says_why_without_raising() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        ready, got = Control(url, timeout=2).probe()
    assert not ready and got
