"""The command line as users run it: ``serve`` in a real process, ``validate``, and the crypto helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.dialects.client import XproClient
from simulator.dialects.crypto import fizzy_signature, xpro_signature

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30


class Served:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert "listening on" in first, first + (self.proc.stderr.read() if self.proc.stderr else "")
        self.url = first.split("listening on ")[1].strip()
        self.banner = first
        for line in self.proc.stdout:  # the rest of the banner, up to the scenario line
            self.banner += line
            if line.strip().startswith("Scenario"):
                break

    def get(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            result: dict[str, object] = json.loads(response.read())
            return result

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=START_TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=START_TIMEOUT)  # drains and closes the pipes


@pytest.fixture
def serve() -> Iterator[type[Served]]:
    started: list[Served] = []

    class Tracked(Served):
        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            started.append(self)

    yield Tracked
    for served in started:
        served.close()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_serve_prints_banner_with_real_port_and_stops_cleanly_on_sigterm(serve: type[Served]) -> None:
    served = serve(["--scenario", "builtin:happy_path"])
    assert ":0" not in served.url and served.url.startswith("http://127.0.0.1:")
    for text in (
        "demo-secret",
        "0123456789abcdef0123456789abcdef",
        "demo-public-key",
        "demo-private-key",
        "happy-path",
        f"Dashboard {served.url}/_sim/ui",
    ):
        assert text in served.banner
    health = served.get("/_sim/health")
    assert health["status"] == "ok" and health["dialects"] == ["xpro", "fizzy", "ambslot"]
    assert served.stop() == 0


def test_sigterm_lets_requests_in_flight_finish(serve: type[Served], tmp_path: Path) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text("name: slow\nrules:\n  - {match: {dialect: ambslot}, delay: 700ms}\n")
    served = serve(["--scenario", str(scenario)])
    body = json.dumps({"username": "member001", "agentId": "demo"}).encode()
    import threading

    answers: list[int] = []

    def call() -> None:
        request = urllib.request.Request(served.url + "/balance", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(json.loads(response.read())["status"]["code"])

    thread = threading.Thread(target=call)
    thread.start()
    for _ in range(200):  # wait until the request is being served, then ask the server to stop
        if served.get("/_sim/health") and served.proc.poll() is None:
            break
    time.sleep(0.2)
    served.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=10)
    assert answers == [0]
    assert served.proc.wait(timeout=START_TIMEOUT) == 0


def test_serve_refuses_a_bad_scenario_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - match: {operation: withdrew}\n    delay: 1s\n")
    result = run("serve", "--port", "0", "--scenario", str(bad))
    assert result.returncode == 2 and "listening" not in result.stdout
    assert f"{bad}:3: rules[0].match.operation:" in result.stderr


def test_serve_refuses_a_bad_config_with_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("server:\n  port: 8080\nfizzy:\n  players: maybe\n")
    result = run("serve", "--config", str(cfg))
    assert result.returncode == 2 and f"{cfg}:4: fizzy.players: 'maybe' is not one of" in result.stderr


def test_serve_refuses_bad_keys_and_amounts_once_the_shape_is_right(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        textwrap.dedent(
            """\
            xpro:
              agents:
                - id: shop
                  secret: s
                  api_key: too-short
            ambslot:
              default_balance: lots
              allowed_sources: ["10.0.0.0/8", "not-an-ip"]
            """
        )
    )
    result = run("serve", "--config", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:5: xpro.agents[0].api_key: an AES-256 key is 32 bytes, this one is 9" in result.stderr
    assert f"{cfg}:7: ambslot.default_balance: 'lots' is not an amount" in result.stderr
    assert f"{cfg}:8: ambslot.allowed_sources:" in result.stderr


def test_serve_refuses_unknown_config_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("server:\n  prot: 1\n")
    result = run("serve", "--config", str(cfg))
    assert result.returncode == 2 and f"{cfg}:2: server.prot: unknown key 'prot'" in result.stderr


def test_serve_refuses_an_open_admin_api_on_a_non_loopback_address() -> None:
    result = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "--admin-token" in result.stderr


def test_serve_on_all_interfaces_with_a_token(serve: type[Served]) -> None:
    served = Served.__new__(Served)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--host", "0.0.0.0", "--port", "0", "--admin-token", "s3cret-tk"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = line.rsplit(":", 1)[1].strip()
        served.url = f"http://127.0.0.1:{port}"
        assert served.get("/_sim/health")["status"] == "ok"  # health stays open
        with pytest.raises(urllib.error.HTTPError) as refused:
            served.get("/_sim/players")
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(served.url + "/_sim/players", headers={"Authorization": "Bearer s3cret-tk"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=START_TIMEOUT) == 0
        proc.communicate()


def test_json_logs_every_line_from_start_to_stop_with_admin_actions(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        first = json.loads(proc.stderr.readline())  # the banner, as log records
        assert first["message"].startswith("Wallet simulator") and first["logger"] == "simulator"
        url = first["url"]
        body = json.dumps({"username": "member001", "agentId": "demo"}).encode()
        calls = [
            ("/balance", body, "POST", "application/json"),
            ("/_sim/reset", b"", "POST", "application/json"),
            ("/_sim/players/fizzy/p-9", b'{"balance": 5}', "PUT", "application/json"),
            ("/_sim/scenario", b"name: other\n", "PUT", "application/yaml"),
        ]
        for path, data, method, kind in calls:
            request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": kind})
            with urllib.request.urlopen(request, timeout=10):
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=START_TIMEOUT)  # a few KB of output: the pipes never fill
        # read through the same text wrapper as readline() above: communicate() would skip what it buffered
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0 and out == ""
    lines = [first] + [json.loads(line) for line in err.splitlines()]  # every line is JSON
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    entry = next(line for line in lines if line.get("endpoint") == "/balance")
    assert entry["logger"] == "simulator.access" and entry["dialect"] == "ambslot"
    assert entry["operation"] == "balance" and entry["player"] == "member001"
    assert entry["status"] == 200 and entry["code"] == 0 and isinstance(entry["ms"], float)
    admin = {line["action"]: line for line in lines if line["logger"] == "simulator.admin"}
    assert set(admin) == {"reset", "player", "scenario"}
    assert admin["player"]["player"] == "p-9" and admin["player"]["fields"] == {"balance": 5}
    assert admin["scenario"]["scenario"] == "other"
    assert any("Scenario  none loaded" in line["message"] for line in lines)
    assert lines[-1]["message"] == "stopped" and "shutting down" in lines[-2]["message"]


def test_json_refusal_is_json_too(tmp_path: Path) -> None:
    result = run("serve", "--port", "0", "--log-format", "json", "--scenario", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    line = json.loads(result.stderr)
    assert line["level"] == "ERROR" and line["problems"] == [f"{tmp_path / 'missing.yaml'}: no such file"]


def test_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = ROOT / "scenarios" / "flaky_network.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrules:\n  - delay: soon\n")
    assert main(["validate", str(good)]) == 0
    assert "ok (flaky-network" in capsys.readouterr().out
    assert main(["validate", str(good), str(bad)]) == 1
    assert f"{bad}:3: rules[0].delay:" in capsys.readouterr().err


def test_validate_reports_every_problem_builtin_names_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "builtin:timeouts", "builtin:happy_path"]) == 0
    out = capsys.readouterr().out
    assert "builtin:timeouts: ok (timeouts: " in out and "(entr(ies)" not in out and "(s)" not in out
    assert "builtin:happy_path: ok (happy-path: 6 player entries, 0 rules)" in out
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: x\nrules:\n  - match: {operation: withdrew}\n    respnd: {error: duplicate}\n")
    assert main(["validate", str(mine), str(tmp_path / "gone.yaml"), "builtin:timeout"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{mine}:3: rules[0].match.operation: 'withdrew' is not one of")
    assert err[0].endswith("(did you mean 'withdraw'?)")
    assert err[1].startswith(f"{mine}:4: rules[0].respnd: unknown key 'respnd' (did you mean 'respond'?)")
    assert err[2] == f"{tmp_path / 'gone.yaml'}: no such file"
    assert err[3].startswith("builtin:timeout: no built-in scenario 'timeout' (did you mean 'timeouts'?)")


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Wallet simulator scenario"
    assert main(["schema", "--path"]) == 0
    assert capsys.readouterr().out.strip().endswith("schema.json")


def test_xpro_encrypt_decrypt_and_sign(capsys: pytest.CaptureFixture[str]) -> None:
    plaintext = '{"username":"player001"}'
    assert main(["xpro", "encrypt", "--plaintext", plaintext, "--iv", "00" * 12]) == 0
    cipher = capsys.readouterr().out.strip()
    assert cipher.startswith("AAAAAAAAAAAAAAAA")
    assert main(["xpro", "decrypt", "--cipher-text", cipher]) == 0
    assert capsys.readouterr().out.strip() == plaintext
    assert main(["xpro", "decrypt", "--cipher-text", cipher, "--api-key", "x" * 32]) == 1
    assert "GCM authentication failed" in capsys.readouterr().err
    assert main(["xpro", "sign", "--cipher-text", cipher, "--timestamp", "1769746894501", "--nonce", "ab" * 16]) == 0
    out = capsys.readouterr().out
    assert f"demo|1769746894501|{'ab' * 16}|{cipher}" in out
    assert xpro_signature("demo", "1769746894501", "ab" * 16, cipher) in out
    assert main(["xpro", "sign", "--plaintext", plaintext, "--path", "/v2/members/balance", "--token", "T"]) == 0
    out = capsys.readouterr().out
    assert "canonical:" in out and "curl -sS -X POST http://127.0.0.1:8080/v2/members/balance" in out
    assert "Authorization: Bearer T" in out


def test_fizzy_sign_shows_the_string_to_sign(capsys: pytest.CaptureFixture[str]) -> None:
    body = '{"playerId":"p-1","sessionId":"s-1","currency":"EUR"}'
    assert main(["fizzy", "sign", "/wallet/balance", body, "--url", "http://h:1"]) == 0
    out = capsys.readouterr().out
    assert "POST\n  http://h:1/wallet/balance" not in out  # printed on one line per note, newlines kept
    assert "http://h:1/wallet/balance" in out
    assert fizzy_signature("demo-private-key", "POST", "http://h:1/wallet/balance", body.encode()) in out


def test_call_helpers_against_a_running_server(serve: type[Served]) -> None:
    served = serve(["--scenario", "builtin:happy_path"])
    env = {**os.environ}
    for args, expected in (
        (
            [
                "xpro",
                "call",
                "--url",
                served.url,
                "--path",
                "/v2/members/balance",
                "--plaintext",
                '{"username":"player001"}',
            ],
            '"balance": 1000',
        ),
        (
            [
                "fizzy",
                "call",
                "/wallet/balance",
                '{"playerId":"p-1","sessionId":"s","currency":"EUR"}',
                "--url",
                served.url,
            ],
            '"balance": 250',
        ),
        (
            ["ambslot", "call", "/balance", '{"username":"member001","agentId":"demo"}', "--url", served.url],
            '"balance": 10000',
        ),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "simulator", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert expected in result.stdout
    assert served.stop() == 0


def test_reference_client_builds_what_the_spec_describes() -> None:
    client = XproClient("http://x", clock=lambda: 1769746894.501)
    prepared = client.prepare(
        "/v2/members/balance", {"username": "u"}, nonce="56ffd5ecd8a3a4457863a0bd7c298fb2", token="T"
    )
    h = prepared.headers
    assert h["x-timestamp"] == "1769746894501" and h["Authorization"] == "Bearer T"
    cipher = json.loads(prepared.body)["cipherText"]
    assert h["x-signature"] == xpro_signature("demo", "1769746894501", "56ffd5ecd8a3a4457863a0bd7c298fb2", cipher)
