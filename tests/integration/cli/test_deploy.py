"""Deployment as an operator or a CI script meets it: ``serve`` configured by environment variables only,
``wait-ready``, and the files the container image is built from."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from simulator.config import environ

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 60


def simulator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_serve_configured_by_environment_variables_only(tmp_path: Path) -> None:
    config = tmp_path / "wallet.yaml"
    config.write_text("server:\n  port: 1\n  log_format: text\nambslot:\n  agents:\n    - {id: shop, currency: USD}\n")
    env = {
        "WALLET_SIM_HOST": "127.0.0.1",
        "WALLET_SIM_PORT": "0",  # beats the config file's port 1
        "WALLET_SIM_CONFIG": str(config),
        "WALLET_SIM_SCENARIO": "builtin:happy_path, builtin:wallet_locked",
        "WALLET_SIM_ADMIN_TOKEN": "tk-123",
        "WALLET_SIM_LOG_FORMAT": "json",  # beats the config file's text
        "WALLET_SIM_QUIET": "yes",
        "WALLET_SIM_JOURNAL_SIZE": "7",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        url = json.loads(proc.stderr.readline())["url"]
        assert not url.endswith(":1")
        waited = simulator("wait-ready", url, "--timeout", "30")
        assert waited.returncode == 0 and waited.stdout.startswith(f"ready: {url}/_sim/health (version ")
        assert "scenario happy-path + wallet-locked" in waited.stdout
        with urllib.request.urlopen(url + "/_sim/health", timeout=10) as response:
            assert json.loads(response.read())["scenario"] == "happy-path + wallet-locked"
        try:
            urllib.request.urlopen(url + "/_sim/players", timeout=10)
            raise AssertionError("the admin token was not required")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
            exc.close()
        for i in range(9):  # quiet: no line per request; journal_size 7 keeps the last 7
            body = json.dumps({"username": f"u{i}", "agentId": "shop"}).encode()
            with urllib.request.urlopen(urllib.request.Request(url + "/balance", data=body), timeout=10) as response:
                assert json.loads(response.read())["status"]["code"] == 0  # the config file's agent
        request = urllib.request.Request(url + "/_sim/journal", headers={"Authorization": "Bearer tk-123"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert len(json.loads(response.read())) == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)  # quiet: a few lines of output, the pipes never fill
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read()
        err = proc.stderr.read()  # through the wrapper readline() used: communicate() would skip its buffer
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.splitlines()]
    assert not [line for line in lines if line["logger"] == "simulator.access"]
    assert lines[-1]["message"] == "stopped"


def test_a_flag_beats_its_variable_and_bad_values_are_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    as_json = simulator("serve", "--port", "0", env={"WALLET_SIM_LOG_FORMAT": "json", "WALLET_SIM_SCENARIO": missing})
    assert as_json.returncode == 2 and json.loads(as_json.stderr)["problems"] == [f"{missing}: no such file"]
    as_text = simulator("serve", "--log-format", "text", "--scenario", missing, env={"WALLET_SIM_LOG_FORMAT": "json"})
    assert as_text.returncode == 2 and as_text.stderr == f"refusing to start:\n  {missing}: no such file\n"
    bad = simulator("serve", env={"WALLET_SIM_PORT": "eighty", "WALLET_SIM_QUIET": "maybe"})
    assert bad.returncode == 2
    assert "WALLET_SIM_PORT='eighty': not a whole number" in bad.stderr
    assert "WALLET_SIM_QUIET='maybe': not a boolean" in bad.stderr


def test_flags_given_as_zero_or_false_still_beat_their_variables() -> None:
    from simulator.cli import parse

    env = {"WALLET_SIM_PORT": "9999", "WALLET_SIM_QUIET": "1", "WALLET_SIM_SCENARIO": "builtin:a, builtin:b"}
    args = parse(["serve", "--port", "0"])
    assert environ.apply(args, env) == []
    assert args.port == 0 and args.quiet is True and args.scenario == ["builtin:a", "builtin:b"]
    args = parse(["serve", "--scenario", "mine.yaml", "--journal-size", "5"])
    assert environ.apply(args, {**env, "WALLET_SIM_JOURNAL_SIZE": "9", "WALLET_SIM_HOST": ""}) == []
    assert args.scenario == ["mine.yaml"] and args.journal_size == 5 and args.host is None and args.port == 9999


def test_every_serve_flag_has_a_variable_and_help_lists_them() -> None:
    from simulator.cli import parser

    top = parser()
    serve = next(a.choices for a in top._actions if isinstance(a.choices, dict))["serve"]
    flags = {a.dest for a in serve._actions if a.option_strings and a.dest != "help"}
    assert flags == {v.dest for v in environ.VARIABLES}
    assert all(v.name.startswith("WALLET_SIM_") for v in environ.VARIABLES)
    shown = simulator("serve", "--help").stdout
    assert all(v.name in shown for v in environ.VARIABLES)


def test_wait_ready_gives_up_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = simulator("wait-ready", url, "--timeout", "0.5", "--interval", "0.1")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"not ready after 0.5s: {url}/_sim/health: ") and result.stderr.count("\n") == 1


def test_container_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# syntax=") or "FROM python:3" in dockerfile
    assert "-slim" in dockerfile and "USER " in dockerfile and "HEALTHCHECK" in dockerfile
    assert "curl" not in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    assert '"-m", "simulator", "serve"' in dockerfile and "WALLET_SIM_HOST=0.0.0.0" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests"} <= set(ignored)


def test_make_run_installs_the_runtime_only_and_make_test_the_dev_tools(tmp_path: Path) -> None:
    def plan(target: str) -> str:
        venv = tmp_path / "venv"  # not there: make shows the whole install
        done = subprocess.run(
            ["make", "-n", "-C", str(ROOT), f"VENV={venv}", target], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run = plan("run")
    # uv (or pip where uv cannot be had) through scripts/install.sh, into an environment made without pip
    assert "venv --without-pip" in run and "scripts/install.sh" in run
    assert "-e ." in run and "[dev" not in run
    assert "--scenario builtin:happy_path" in run
    for target in ("unit", "lint", "typecheck", "docs"):
        assert "-e '.[dev,docs]'" in plan(target)
    tests = plan("test")
    assert "mkdocs build --strict" in tests and "pytest" in tests  # CI (.ci/run: make test) builds the docs
    assert "make test" in (ROOT / ".ci" / "run").read_text()
