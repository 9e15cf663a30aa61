"""``builtin:NAME`` works everywhere a scenario is accepted: PUT /_sim/scenario (a text/plain body), the
dashboard's validate call, ``serve --scenario`` and ``validate`` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Harness


async def put(h: Harness, path: str, body: str, kind: str = "text/plain") -> tuple[int, dict[str, object]]:
    async with h.http.request(
        "PUT" if path == "/_sim/scenario" else "POST", h.url + path, data=body.encode(), headers={"Content-Type": kind}
    ) as response:
        return response.status, json.loads(await response.read())


@pytest.mark.asyncio
async def test_put_scenario_takes_builtin_name_as_text_plain(h: Harness) -> None:
    status, body = await put(h, "/_sim/scenario", "builtin:insufficient_funds\n")
    assert status == 200, body
    assert body["name"] == "insufficient-funds" and body["ok"] is True
    status, scenario = await h.admin("GET", "/_sim/scenario")
    assert status == 200 and "name: insufficient-funds" in str(scenario)
    await h.xpro.authenticate()
    assert (await h.xpro.balance("player001")).json["code"] == 0  # its players are loaded


@pytest.mark.asyncio
async def test_put_scenario_refuses_an_unknown_builtin_with_a_hint(h: Harness) -> None:
    status, body = await put(h, "/_sim/scenario", "builtin:happy_pth")
    assert status == 400
    assert "no built-in scenario 'happy_pth' (did you mean 'happy_path'?)" in str(body["problems"])


@pytest.mark.asyncio
async def test_dashboard_validate_takes_builtin_name(h: Harness) -> None:
    status, body = await put(h, "/_sim/scenario/validate", "builtin:timeouts", "application/yaml")
    assert status == 200 and body["ok"] is True and body["name"] == "timeouts", body


@pytest.mark.asyncio
async def test_put_scenario_answers_the_warnings_of_a_valid_file(h: Harness) -> None:
    text = "name: w\nrules:\n  - match: {amount: {gt: 10, lt: 5}}\n    respond: {error: timeout}\n"
    status, body = await put(h, "/_sim/scenario", text, "application/yaml")
    assert status == 200 and body["warnings"] == [
        "(PUT /_sim/scenario):3: rules[0].match.amount: warning: no amount satisfies gt: 10, lt: 5: "
        "this rule can never match"
    ], body


def test_validate_command_takes_builtin_names() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", "builtin:happy_path", "builtin:flaky_network"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "builtin:happy_path: ok" in done.stdout and "builtin:flaky_network: ok" in done.stdout


@pytest.mark.asyncio
async def test_text_plain_stays_refused_where_a_browser_needs_no_preflight(h: Harness) -> None:
    status, body = await put(h, "/_sim/scenario/validate", "builtin:timeouts")  # a POST: no preflight
    assert status == 415, body


async def get_text(h: Harness, path: str) -> str:
    async with h.http.get(h.url + path) as response:
        assert response.status == 200
        return await response.text()


@pytest.mark.asyncio
async def test_a_scenario_of_several_files_loads_back_as_get_answered_it(h: Harness) -> None:
    """GET /_sim/scenario after several files answers one YAML document per file; PUT of that text gives the
    same scenario (it was refused with every top-level key a duplicate), and GET answers the same text."""
    from simulator.scenarios import loader

    combined = loader.load_files(["builtin:happy_path", "builtin:timeouts"])
    status, body = await put(h, "/_sim/scenario", loader.dump(combined), "application/yaml")
    assert status == 200, body
    assert body["name"] == "happy-path + timeouts" and body["rules"] == len(combined.rules), body
    first = await get_text(h, "/_sim/scenario")
    assert first.startswith("--- # builtin:happy_path\n") and "\n--- # builtin:timeouts\n" in first
    status, body = await put(h, "/_sim/scenario", first, "application/yaml")
    assert status == 200, body
    assert await get_text(h, "/_sim/scenario") == first  # a fixed point: nothing grows on a round trip


@pytest.mark.asyncio
async def test_a_mistake_in_a_later_document_names_its_line_in_the_whole_body(h: Harness) -> None:
    text = "name: a\n---\nname: b\nrules:\n  - match: {operation: withdrw}\n    respond: {error: timeout}\n"
    status, body = await put(h, "/_sim/scenario", text, "application/yaml")
    assert status == 400
    problems = body["problems"]
    assert isinstance(problems, list)
    assert any(p.startswith("(PUT /_sim/scenario):5: rules[0].match.operation") for p in problems), body


def test_a_scenario_saved_from_get_loads_as_a_file(tmp_path: Path) -> None:
    """`curl $S/scenario > saved.yaml` after several files, then `validate saved.yaml` or `serve --scenario
    saved.yaml`: the file holds one document per file, which a file load took for a YAML syntax error."""
    from simulator.scenarios import loader

    combined = loader.load_files(["builtin:happy_path", "builtin:timeouts"])
    saved = tmp_path / "saved.yaml"
    saved.write_text(loader.dump(combined), encoding="utf-8")
    again = loader.load_files([str(saved), "builtin:insufficient_funds"])
    assert again.sources == ["builtin:happy_path", "builtin:timeouts", "builtin:insufficient_funds"]
    assert [r.name for r in again.rules][: len(combined.rules)] == [r.name for r in combined.rules]
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", str(saved)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "ok (happy-path + timeouts" in done.stdout, done.stdout + done.stderr
