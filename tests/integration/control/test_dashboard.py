"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium). ``make test`` installs them through ``scripts/system-deps.sh``; when they are missing these tests
fail with the command to run, they are never skipped.

One browser (a session fixture) and one simulator (in a background thread, as the pytest plugin runs it)
serve the whole module; each test resets the simulator and loads the page afresh. Screenshots of every view land in
``test-output/dashboard/`` (git-ignored) for review.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from simulator import config, control
from simulator.dialects.client import XproClient
from simulator.scenarios import loader
from simulator.testing import ServerThread

ROOT = Path(__file__).resolve().parents[3]
HAPPY = ROOT / "scenarios" / "happy_path.yaml"
SHOTS = ROOT / "test-output" / "dashboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 10.0  # generous bound for page actions on a busy CI machine
LIVE_WITHIN = 1.0  # the promise: a request shows in the live list within a second
TOKEN = "s3cret-admin-token"
TYPE_IN = "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1280,900",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Chrome]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(
            f"the dashboard tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
            "run `sudo sh scripts/system-deps.sh` (make test does it when run as root)",
            pytrace=False,
        )
    profile = tempfile.mkdtemp(prefix="wallet-sim-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # an explicit driver path: Selenium Manager never looks for (or downloads) anything
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _server(**server: Any) -> ServerThread:
    settings = config.from_dict({"server": server})
    scenario = loader.read(str(HAPPY), settings)
    thread = ServerThread(settings, scenario)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = _server()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def page(browser: Chrome, server: ServerThread) -> Chrome:
    call(server.url, "PUT", "/_sim/scenario", text=HAPPY.read_text())  # the scenario back, ledger reset
    browser.set_window_size(1280, 900)
    browser.get(server.url + "/_sim/ui")
    wait_text(browser, "feed-status", "live")
    browser.get_log("browser")  # start each test with an empty console
    return browser


def call(url: str, method: str, path: str, body: Any = None, text: str | None = None) -> tuple[int, Any]:
    data = text.encode() if text is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/yaml" if text is not None else "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def bet(url: str, round_id: str, amount: int = 1) -> int:
    body = {
        "username": "member001",
        "agent": "demo",
        "game": "G",
        "gameId": "G",
        "roundId": round_id,
        "amount": amount,
        "currency": "THB",
        "transactionId": "tx-" + round_id,
        "timestamp": "2026-01-01T00:00:00.000",
        "isEndRound": False,
        "featureBuy": False,
    }
    code: int = call(url, "POST", "/bet", body)[1]["status"]["code"]
    return code


def wait(driver: Chrome, timeout: float = WAIT) -> WebDriverWait[Chrome]:
    # the page re-renders lists as data arrives: an element read a moment ago may be gone; look again
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])


def wait_text(driver: Chrome, element_id: str, text: str, timeout: float = WAIT) -> None:
    wait(driver, timeout).until(ec.text_to_be_present_in_element((By.ID, element_id), text))


def visible(driver: Chrome, css: str, timeout: float = WAIT) -> WebElement:
    found: WebElement = wait(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
    return found


def tab(driver: Chrome, name: str) -> None:
    driver.find_element(By.ID, f"tab-{name}").click()
    visible(driver, f"#view-{name}")


def console_errors(driver: Chrome) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def sent_requests(driver: Chrome) -> list[dict[str, Any]]:
    """The requests the page sent since the last call, with the headers that went on the wire (Chrome's
    performance log: the request, then its "extra info" with what the network layer added, like Origin)."""
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    wire = {e["params"]["requestId"]: e["params"]["headers"] for e in events
            if e["method"] == "Network.requestWillBeSentExtraInfo"}  # fmt: skip
    sent = []
    for e in events:
        if e["method"] == "Network.requestWillBeSent":
            request = e["params"]["request"]
            sent.append({**request, "headers": {**request["headers"], **wire.get(e["params"]["requestId"], {})}})
    return sent


def shot(driver: Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_every_view_loads_without_console_errors_at_desktop_and_phone_width(page: Chrome, server: ServerThread) -> None:
    for i in range(3):
        assert bet(server.url, f"S{i}", 5) == 0
    visible(page, "#traffic-rows tr")
    page.find_element(By.CSS_SELECTOR, "#traffic-rows tr").click()
    visible(page, "#entry-detail")
    shot(page, "traffic")
    tab(page, "players")
    visible(page, "#player-rows tr")
    shot(page, "players")
    tab(page, "scenario")
    wait(page).until(lambda d: "happy-path" in (d.find_element(By.ID, "yaml").get_attribute("value") or ""))
    shot(page, "scenario")
    tab(page, "health")
    wait_text(page, "invariants", "The books balance")
    wait_text(page, "dialect-cards", "3 requests")
    shot(page, "health")
    wait_text(page, "scorecard-summary", "judged 0")  # the scorecard: no fault injected, nothing to judge
    page.set_window_size(390, 844)
    for name in ("traffic", "players", "scenario", "health"):
        tab(page, name)
        shot(page, f"phone-{name}")
        width = page.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the {name} view scrolls sideways on a phone ({width}px)"
    assert console_errors(page) == []


def test_a_request_appears_in_the_live_list_within_a_second_with_its_decrypted_plaintext(
    page: Chrome, server: ServerThread
) -> None:
    async def transfer() -> None:
        client = XproClient(server.url)
        try:
            await client.authenticate()
            await client.create_member("player042")
            await client.transfer("player042", "12.34", "DASH-1")
        finally:
            await client.close()

    asyncio.run(transfer())
    row = "#traffic-rows tr[data-seq] td:nth-child(5)"
    wait(page, LIVE_WITHIN).until(lambda d: any(c.text == "DASH-1" for c in d.find_elements(By.CSS_SELECTOR, row)))
    page.find_element(By.XPATH, "//td[text()='DASH-1']").click()
    request = visible(page, "#entry-request").text
    assert '"username": "player042"' in request and '"amount": 12.34' in request  # decrypted, exact
    assert '"code": 0' in page.find_element(By.ID, "entry-answer").text
    Select(page.find_element(By.ID, "f-dialect")).select_by_visible_text("ambslot")
    assert page.find_elements(By.CSS_SELECTOR, "#traffic-rows tr") == []
    Select(page.find_element(By.ID, "f-dialect")).select_by_visible_text("any")
    page.find_element(By.ID, "pause").click()
    assert bet(server.url, "P1") == 0
    wait_text(page, "traffic-info", "paused: 1 new")
    assert not any(c.text == "tx-P1" for c in page.find_elements(By.CSS_SELECTOR, row))
    page.find_element(By.ID, "pause").click()
    visible(page, "#traffic-rows tr:first-child").find_element(By.XPATH, "//td[text()='tx-P1']")
    assert console_errors(page) == []


def test_editing_a_balance_in_the_page_books_an_adjustment(page: Chrome, server: ServerThread) -> None:
    tab(page, "players")
    field = visible(page, 'input[aria-label="Balance of member001 (ambslot)"]')
    field.send_keys(Keys.CONTROL, "a")  # as a user does: select the old balance, type over it
    field.send_keys("123.45\n")
    wait(page).until(lambda d: "saved" in (field.get_attribute("class") or ""))
    sim = server.simulator
    player = sim.ledger.player("ambslot", "demo", "member001")
    assert player.balance == Decimal("123.45")
    # what the control API's CSRF rule asks of a state-changing call: same origin, JSON
    found = [r for r in sent_requests(page) if r["method"] == "PUT" and "/_sim/players/ambslot/member001" in r["url"]]
    (sent,) = found
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["content-type"] == "application/json" and headers["origin"] == server.url
    assert json.loads(sent["postData"]) == {"balance": "123.45", "agent": "demo"}
    assert [t.kind for t in player.history][-1] == "adjust"
    locked = page.find_element(By.CSS_SELECTOR, 'input[aria-label="locked: member001 (ambslot)"]')
    locked.send_keys(" ")  # the keyboard toggles it
    wait(page).until(lambda d: player.locked)
    assert bet(server.url, "L1") == 999
    page.find_element(By.CSS_SELECTOR, 'button[aria-label="Transactions of member001 (ambslot)"]').click()
    wait_text(page, "txn-rows", "adjust")
    page.find_element(By.ID, "p-id").send_keys("newbie7")
    page.find_element(By.ID, "p-balance").send_keys("5.50\n")
    wait_text(page, "notice", "Added xpro player newbie7")
    assert sim.ledger.player("xpro", "demo", "newbie7").balance == Decimal("5.50")
    assert console_errors(page) == []  # no refused call on the way


def test_a_broken_scenario_shows_its_problems_by_line_and_stays_unloaded(page: Chrome, server: ServerThread) -> None:
    tab(page, "scenario")
    editor = visible(page, "#yaml")
    wait(page).until(lambda d: "happy-path" in (editor.get_attribute("value") or ""))
    broken = "name: broken\nrules:\n  - match:\n      operation: withdrawal\n    respond: {error: insufficient_funds}\n"
    page.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))", editor, broken
    )
    page.find_element(By.ID, "validate").click()
    problem = visible(page, '#problems li[data-line="4"]')
    assert "rules[0].match.operation" in problem.text and "withdrawal" in problem.text
    assert page.find_element(By.CSS_SELECTOR, "#gutter .problem").text == "4"
    shot(page, "scenario-problems")
    page.find_element(By.ID, "apply").click()
    wait_text(page, "scenario-result", "not applied")
    assert server.simulator.scenario.name == "happy-path"
    fixed = broken.replace("withdrawal", "withdraw")
    page.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))", editor, fixed
    )
    page.find_element(By.ID, "apply").click()
    wait_text(page, "scenario-result", 'applied "broken"')
    assert server.simulator.scenario.name == "broken"


def test_the_quick_action_makes_the_next_matching_request_fail(page: Chrome, server: ServerThread) -> None:
    tab(page, "scenario")
    Select(page.find_element(By.ID, "q-dialect")).select_by_visible_text("ambslot")
    page.find_element(By.ID, "q-player").send_keys("member001")
    page.find_element(By.ID, "q-operation").send_keys("bet")
    Select(page.find_element(By.ID, "q-error")).select_by_visible_text("insufficient_funds")
    page.find_element(By.CSS_SELECTOR, "#quick button[type=submit]").click()
    wait_text(page, "quick-result", "answers insufficient_funds")
    assert bet(server.url, "Q1") == 800
    assert bet(server.url, "Q2") == 0
    _, listed = call(server.url, "GET", "/_sim/rules")
    assert listed["rules"][0]["hits"] == 1 and listed["rules"][0]["remaining"] == 0
    name = listed["rules"][0]["name"]
    wait(page).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'#rule-rows tr[data-rule="{name}"] td.hits').text == "1"
    )
    shot(page, "scenario-rules")
    page.find_element(By.CSS_SELECTOR, f'button[aria-label="Remove rule {name}"]').click()
    wait(page).until(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#rule-rows tr[data-rule="{name}"]'))
    assert console_errors(page) == []


def test_health_shows_broken_invariants_and_the_scorecard_findings(
    browser: Chrome, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def report(request: web.Request) -> web.Response:
        finding = {"severity": "fail", "message": "retried a refused withdraw with a new id", "dialect": "xpro",
                   "player": "player001", "transaction": "WD-9", "verdict": "double debit risk"}  # fmt: skip
        summary = {"judged": 3, "passed": 2, "failed": 1, "warnings": 0}
        return web.json_response({"ok": False, "summary": summary, "findings": [finding]})

    tables = [[web.get("/report", report)] if table is control.report.ROUTES else table for table in control.TABLES]
    monkeypatch.setattr(control, "TABLES", tables)
    judged = _server()
    try:
        player = judged.simulator.ledger.player("xpro", "demo", "player001")
        player.balance += 1  # behind the ledger's back (the server is idle): the books no longer add up
        browser.get(judged.url + "/_sim/ui#health")
        wait_text(browser, "invariants", "Invariants broken")
        assert "player001" in browser.find_element(By.ID, "invariants").text
        visible(browser, "#scorecard-panel")
        wait_text(browser, "findings", "retried a refused withdraw with a new id")
        assert "judged 3, passed 2, failed 1, warnings 0" in browser.find_element(By.ID, "scorecard-summary").text
        shot(browser, "health-scorecard")
    finally:
        judged.stop()


def test_the_page_asks_for_the_admin_token_once_and_keeps_it_for_the_tab(browser: Chrome) -> None:
    locked = _server(admin_token=TOKEN)
    try:
        browser.set_window_size(1280, 900)
        browser.get(locked.url + "/_sim/ui#players")
        token = visible(browser, "#token-input")
        token.send_keys(Keys.ESCAPE)  # dismissed: the page waits instead of asking again
        visible(browser, "#unlock").click()
        token = visible(browser, "#token-input")
        token.send_keys("wrong\n")
        visible(browser, "#token-error")  # asked again, saying the last one was refused
        token.send_keys(TOKEN + "\n")
        wait_text(browser, "feed-status", "live")
        visible(browser, 'input[aria-label="Balance of member001 (ambslot)"]')
        browser.refresh()  # the same tab: no second prompt
        wait_text(browser, "feed-status", "live")
        assert not browser.find_element(By.ID, "token-dialog").is_displayed()
        stored = browser.execute_script("return sessionStorage.getItem('wallet-sim-admin-token')")
        assert stored == TOKEN
        assert call(locked.url, "GET", "/_sim/players")[0] == 401
    finally:
        locked.stop()


def test_the_page_acknowledges_its_feed_so_idle_pages_cannot_take_its_slot(browser: Chrome) -> None:
    """The live feed's slots are shared: pages that read nothing give theirs up, the real page keeps its own."""
    watched = _server(feed_stall_seconds=2.0)  # the page acknowledges about once a second
    host, port = watched.url.removeprefix("http://").rsplit(":", 1)

    def feed_page() -> tuple[socket.socket, int]:
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /_sim/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return sock, int(sock.recv(4096).split(b" ", 2)[1])

    idle: list[socket.socket] = []
    try:
        browser.get(watched.url + "/_sim/ui")
        wait_text(browser, "feed-status", "live")
        sent_requests(browser)  # forget what was sent so far
        while len(idle) < 15:  # every other slot, held by pages that never read nor acknowledge
            sock, status = feed_page()
            assert status == 200
            idle.append(sock)
        displaced = 0
        deadline = time.monotonic() + 20  # bounded in time, not count: a fast machine ran 400 tries in < 2 s
        while displaced < 15 and time.monotonic() < deadline:  # displaceable after feed_stall_seconds
            sock, status = feed_page()
            sock.close()
            displaced += status == 200
            if displaced < 15:
                browser.execute_script("return 1")  # let the page run
                time.sleep(0.02)
        assert displaced == 15
        sent = sent_requests(browser)
        acks = [r for r in sent if r["url"].endswith("/ack") and r["method"] == "POST"]
        feeds = [r for r in sent if r["url"].endswith("/_sim/events")]
        assert acks and not feeds  # it acknowledged, and never had to connect again
        assert browser.find_element(By.ID, "feed-status").text == "live"
    finally:
        for sock in idle:
            sock.close()
        watched.stop()
