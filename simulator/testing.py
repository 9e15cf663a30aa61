"""Running a simulator from Python, and talking to its ``/_sim`` control API: what the pytest plugin, the
``report`` and ``wait-ready`` commands, the benchmarks and the tests share.

- :class:`ServerThread`: a simulator in a background thread with its own event loop, on 127.0.0.1 and a free
  port (in-process: no subprocess, no fixed port), stopped with :meth:`ServerThread.stop`.
- :class:`Control`: a small synchronous client of the control API (standard library only), one method per
  call; :class:`WalletSimulator` adds what a test session needs (scenario files looked up like the
  plugin's marker, a reset that puts the session's scenario back).

::

    from simulator.testing import ServerThread, WalletSimulator

    server = ServerThread.from_files(None, ["builtin:happy_path"])
    sim = WalletSimulator(server.start(), "")
    assert sim.health()["status"] == "ok"
    server.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from simulator import jsonio

STARTUP_TIMEOUT = 30.0
MAX_PAGE = 10_000  # the control API's largest page (``limit``) of a listing


class ControlError(AssertionError):
    """The control API refused a call (the message says what it answered)."""


WalletSimulatorError = ControlError  # the name the pytest plugin has always raised


class Control:
    """The ``/_sim`` control API of the simulator at ``url`` as plain method calls (``admin_token``: the
    server's ``--admin-token``)."""

    page_size = MAX_PAGE  # rows asked per page of a paged listing

    def __init__(self, url: str, admin_token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    # transport

    def send(self, method: str, path: str, body: Any = None, text: str | None = None) -> tuple[int, bytes]:
        """One call: ``(HTTP status, body bytes)``; raises ``urllib.error.URLError`` / ``OSError`` when the
        simulator cannot be reached."""
        status, raw, _ = self.exchange(method, path, body, text)
        return status, raw

    def exchange(
        self, method: str, path: str, body: Any = None, text: str | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """One call: ``(HTTP status, body bytes, response headers)``."""
        data = text.encode("utf-8") if text is not None else (None if body is None else jsonio.dumps(body).encode())
        request = urllib.request.Request(self.url + "/_sim" + path, data=data, method=method)
        request.add_header("Content-Type", "application/yaml" if text is not None else "application/json")
        if self.admin_token:
            request.add_header("Authorization", f"Bearer {self.admin_token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(), dict(exc.headers)

    def _answer(
        self, method: str, path: str, body: Any = None, text: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """One call: ``(HTTP status, the body as JSON, or as text if it is not JSON, response headers)``."""
        status, raw, headers = self.exchange(method, path, body, text)
        try:
            return status, jsonio.loads(raw), headers
        except jsonio.JSONError:
            return status, raw.decode("utf-8", "replace"), headers

    def _call(self, method: str, path: str, body: Any = None, text: str | None = None) -> tuple[int, Any]:
        status, answer, _ = self._answer(method, path, body, text)
        return status, answer

    def _ok(self, method: str, path: str, body: Any = None, text: str | None = None) -> Any:
        return self._ok_with_headers(method, path, body, text)[0]

    def _ok_with_headers(
        self, method: str, path: str, body: Any = None, text: str | None = None
    ) -> tuple[Any, dict[str, str]]:
        status, answer, headers = self._answer(method, path, body, text)
        if status >= 400:
            raise WalletSimulatorError(f"{method} /_sim{path} answered {status}: {answer}")
        return answer, headers

    def _every_page(self, path: str) -> list[Any]:
        """A paged listing (``GET /_sim/players``, ``/transactions``) whole: its pages, following
        ``X-Next-Cursor`` until the last one."""
        found: list[Any] = []
        cursor: str | None = None
        while True:
            sep = "&" if "?" in path else "?"
            query = f"{sep}limit={self.page_size}" + (
                f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else ""
            )
            answer, headers = self._ok_with_headers("GET", path + query)
            found.extend(answer)
            cursor = next((v for k, v in headers.items() if k.lower() == "x-next-cursor"), None)
            if not cursor:
                return found

    @staticmethod
    def _query(**params: Any) -> str:
        given = {k: v for k, v in params.items() if v is not None}
        return "?" + urllib.parse.urlencode(given) if given else ""

    # the control API

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ok("GET", "/health")
        return result

    def probe(self) -> tuple[bool, str]:
        """One readiness check of ``/_sim/health``: ``(ready, what it got)``, never raising."""
        try:
            status, raw = self.send("GET", "/health")
            body = json.loads(raw) if status == 200 else None
        except urllib.error.URLError as exc:
            return False, str(getattr(exc.reason, "strerror", None) or exc.reason)
        except (OSError, ValueError) as exc:  # timeouts, resets, a body that is not JSON
            return False, f"{type(exc).__name__}: {exc}"
        if status != 200:
            return False, f"HTTP {status}"
        if isinstance(body, dict) and body.get("status") == "ok":
            return True, f"version {body.get('version')}, scenario {body.get('scenario')}"
        return False, f"answered {body!r}"

    def reset(self) -> None:
        self._ok("POST", "/reset")

    def load_scenario(self, scenario: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a scenario: ``builtin:NAME``, a file path, or YAML text."""
        result: dict[str, Any] = self._ok("PUT", "/scenario", text=scenario_text(scenario, [Path.cwd()]))
        return result

    def set_player(self, dialect: str, player: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._ok("PUT", f"/players/{dialect}/{urllib.parse.quote(player, safe='')}", fields)
        return result

    def player(self, dialect: str, player: str, tenant: str | None = None) -> dict[str, Any]:
        from simulator.dialects import registry

        key = registry.get(dialect).tenant_key
        query = self._query(**{key: tenant})
        result: dict[str, Any] = self._ok("GET", f"/players/{dialect}/{urllib.parse.quote(player, safe='')}{query}")
        return result

    def players(self, dialect: str | None = None, q: str | None = None) -> list[dict[str, Any]]:
        """Every player (the listing's pages, followed)."""
        return self._every_page("/players" + self._query(dialect=dialect, q=q))

    def transactions(
        self, dialect: str | None = None, player: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Every transaction, newest first (the listing's pages, followed)."""
        return self._every_page("/transactions" + self._query(dialect=dialect, player=player, status=status))

    def journal(
        self,
        dialect: str | None = None,
        operation: str | None = None,
        player: str | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded requests, oldest first (so ``[-1]`` is the latest)."""
        query = self._query(dialect=dialect, operation=operation, player=player, rule=rule, limit=limit)
        result: list[dict[str, Any]] = self._ok("GET", "/journal" + query)
        return result

    def clear_journal(self) -> None:
        self._ok("DELETE", "/journal")

    def verify(
        self, match: dict[str, Any], count: int | None = None, *, min: int | None = None, max: int | None = None
    ) -> dict[str, Any]:
        """Assert how many recorded requests match; the AssertionError shows the closest ones."""
        body: dict[str, Any] = {"match": match}
        for key, value in (("count", count), ("min", min), ("max", max)):
            if value is not None:
                body[key] = value
        status, answer = self._call("POST", "/journal/verify", body)
        if status == 409:
            raise WalletSimulatorError(verify_failure(match, answer))
        if status != 200:
            raise WalletSimulatorError(f"journal verify refused: {answer}")
        result: dict[str, Any] = answer
        return result

    def report(self) -> dict[str, Any]:
        """The scorecard (``GET /_sim/report``): every injected fault judged, plus hygiene findings."""
        result: dict[str, Any] = self._ok("GET", "/report")
        return result

    def assert_clean(self, *, warnings: bool = False) -> dict[str, Any]:
        """Fail the test with a readable list of what the client did wrong (``warnings=True``: warnings
        too); return the report when it is clean."""
        report = self.report()
        bad = ("fail", "warn") if warnings else ("fail",)
        wrong = [f for f in report["findings"] if f["severity"] in bad]
        if wrong:
            lines = [f"the client did {len(wrong)} thing(s) wrong:"]
            for f in wrong:
                label = f["verdict"] or f["check"] or f["kind"]
                lines.append(f"  [{f['severity']}] {f['dialect']} {label}: {f['message']}")
            raise WalletSimulatorError("\n".join(lines))
        return report

    # run-time rules

    def rules(self) -> dict[str, Any]:
        """``{"rules": [{name, position, hits, remaining, definition}, ...], "never_fired": [names]}``."""
        result: dict[str, Any] = self._ok("GET", "/rules")
        return result

    def add_rule(self, rule: dict[str, Any] | str, position: int | None = None) -> dict[str, Any]:
        """Add one rule (a dict, or JSON/YAML text) without a reset; last unless ``position`` (0 = first)."""
        result: dict[str, Any] = self._ok("POST", "/rules" + self._query(position=position), **_rule_body(rule))
        return result

    def replace_rule(self, name: str, rule: dict[str, Any] | str) -> dict[str, Any]:
        """Replace the rule ``name`` in place; the new one starts with zero hits."""
        path = "/rules/" + urllib.parse.quote(name, safe="")
        result: dict[str, Any] = self._ok("PUT", path, **_rule_body(rule))
        return result

    def remove_rule(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._ok("DELETE", "/rules/" + urllib.parse.quote(name, safe=""))
        return result

    def invariants(self) -> dict[str, Any]:
        status, answer = self._call("GET", "/invariants")
        if status != 200:
            raise WalletSimulatorError(f"ledger invariants broken: {jsonio.pretty(answer)}")
        result: dict[str, Any] = answer
        return result


class WalletSimulator(Control):
    """The pytest plugin's handle: a :class:`Control` whose :meth:`reset` also puts the session's scenario
    back when a test changed it (loaded another, or added, replaced or removed rules), and whose scenario
    paths are looked up in the working directory, the test's folder and the rootdir."""

    def __init__(self, url: str, base_scenario: str, admin_token: str | None = None) -> None:
        super().__init__(url, admin_token)
        self._base_scenario = base_scenario
        self._scenario_changed = False
        self._bases: list[Path] = [Path.cwd()]  # where relative scenario paths are looked up (set per test)

    def reset(self) -> None:
        if self._scenario_changed:
            self._ok("PUT", "/scenario", text=self._base_scenario)
            self._scenario_changed = False
        super().reset()

    def load_scenario(self, scenario: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a scenario: ``builtin:NAME``, a file (a path, looked up like the marker's: the working
        directory, the test's folder, the rootdir), or YAML text. A missing file or an invalid scenario
        raises with a clear message (the validator's, with line numbers)."""
        text = scenario_text(scenario, self._bases)
        self._scenario_changed = True
        result: dict[str, Any] = self._ok("PUT", "/scenario", text=text)
        return result

    def add_rule(self, rule: dict[str, Any] | str, position: int | None = None) -> dict[str, Any]:
        self._scenario_changed = True
        return super().add_rule(rule, position)

    def replace_rule(self, name: str, rule: dict[str, Any] | str) -> dict[str, Any]:
        self._scenario_changed = True
        return super().replace_rule(name, rule)

    def remove_rule(self, name: str) -> dict[str, Any]:
        self._scenario_changed = True
        return super().remove_rule(name)


def fetch_report(url: str, fmt: str = "json", admin_token: str | None = None) -> tuple[int, str]:
    """``GET {url}/_sim/report?format=...``: (HTTP status, body text), for ``python -m simulator report``."""
    status, raw = Control(url, admin_token, timeout=60.0).send("GET", f"/report?format={fmt}")
    return status, raw.decode("utf-8", "replace")


def looks_like_yaml(text: str) -> bool:
    return "\n" in text or ": " in text or text.lstrip().startswith("{")


def scenario_text(scenario: str | os.PathLike[str], bases: list[Path]) -> str:
    """The YAML of a scenario given as ``builtin:NAME``, a path (relative ones tried against ``bases``) or text."""
    from simulator.errors import SourceError
    from simulator.scenarios import loader

    given = str(scenario)
    if isinstance(scenario, str) and given.startswith(loader.BUILTIN):
        try:
            return loader.read_source(given)
        except SourceError as exc:
            raise WalletSimulatorError("; ".join(exc.problems)) from None
    if isinstance(scenario, str) and looks_like_yaml(given):
        return given
    return Path(find_file(given, bases)).read_text(encoding="utf-8")


def find_file(path: str, bases: list[Path]) -> str:
    for base in bases:
        candidate = base / path
        if candidate.is_file():
            return str(candidate)
    where = ", ".join(str(b) for b in bases)
    raise WalletSimulatorError(f"no scenario file {path!r} (looked in {where}); for a shipped one use 'builtin:NAME'")


def verify_failure(match: dict[str, Any], answer: dict[str, Any]) -> str:
    """A failed verify in a few lines: what was asked, how many matched, and for each closest recorded
    request which match key differed (expected vs actual). No request bodies, so no tokens or secrets."""
    wanted = ", ".join(f"{k} {v}" for k, v in answer.get("expected", {}).items())
    found = answer.get("found")
    counted = f"{found} request matches" if found == 1 else f"{found} requests match"
    lines = [f"journal verify failed: {counted} {match}, expected {wanted}"]
    misses = answer.get("misses") or []
    lines.append("closest recorded requests:" if misses else "the journal is empty")
    lines += [f"  {line}" for line in misses]
    return "\n".join(lines)


def _rule_body(rule: dict[str, Any] | str) -> dict[str, Any]:
    return {"text": rule} if isinstance(rule, str) else {"body": rule}


class ServerThread:
    """A simulator in a daemon thread with its own event loop, on 127.0.0.1 and a free port."""

    def __init__(self, settings: Any, scenario: Any = None) -> None:
        from simulator.scenarios.model import Scenario

        self.settings = _on_free_loopback_port(settings)
        self.scenario = scenario or Scenario.empty()
        self.url = ""
        self.simulator: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="wallet-simulator", daemon=True)

    @classmethod
    def from_files(cls, config_path: str | None, scenario_paths: list[str]) -> ServerThread:
        from simulator.config import load
        from simulator.scenarios import loader

        settings = load(config_path)
        return cls(settings, loader.load_files(scenario_paths, settings))

    def _run(self) -> None:
        from simulator.server.serve import serve

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(url: str) -> None:
                self.url = url
                self._ready.set()

            await serve(self.settings, self.scenario, admin_token=None, ready=ready, stop=self._stop, keep=self._keep)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    def _keep(self, simulator: Any) -> None:
        self.simulator = simulator

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"the wallet simulator did not start: {self._error!r}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=STARTUP_TIMEOUT)


def _on_free_loopback_port(settings: Any) -> Any:
    from dataclasses import replace

    return replace(settings, server=replace(settings.server, host="127.0.0.1", port=0, log_requests=False))
