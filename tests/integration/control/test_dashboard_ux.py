"""Dashboard slips in a real headless Chromium: the scorecard table fits a 1400 px window however long its
findings, and the traffic list empties when another client resets the simulator."""

from __future__ import annotations

from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from simulator.testing import ServerThread
from tests.integration.control import test_dashboard as dash
from tests.integration.control.test_dashboard import bet, call, shot, visible, wait, wait_text

browser, server, page = dash.browser, dash.server, dash.page  # the dashboard tests' fixtures

SLOW_WALLET = """\
name: long-findings
players:
  - {dialect: ambslot, username: member001, balance: 1000}
rules:
  - name: timeout-but-applied
    match: {dialect: ambslot, operation: bet}
    respond: {error: timeout, message: "the wallet timed out while it was thinking about this bet very hard indeed"}
    apply: true
"""


def test_the_scorecard_table_fits_a_1400_px_window(page: Chrome, server: ServerThread) -> None:
    assert call(server.url, "PUT", "/_sim/scenario", text=SLOW_WALLET)[0] == 200
    for n in range(4):
        bet(server.url, f"round-with-a-rather-long-identifier-{n:04d}-{'x' * 40}")
    status, report = call(server.url, "GET", "/_sim/report")
    assert status == 200 and report["findings"] and max(len(f["message"]) for f in report["findings"]) > 200
    page.set_window_size(1400, 900)
    dash.tab(page, "health")
    visible(page, "#scorecard-panel")
    wait_text(page, "findings", report["findings"][0]["message"][:60])
    overflow = page.execute_script(
        "const box = document.querySelector('#scorecard-panel .scroll');"
        "return {page: document.documentElement.scrollWidth - document.documentElement.clientWidth,"
        "        box: box.scrollWidth - box.clientWidth, width: box.clientWidth};"
    )
    shot(page, "scorecard-1400")
    assert overflow["page"] <= 0 and overflow["box"] <= 0, overflow  # no sideways scrolling, page or table
    cells = page.find_elements(By.CSS_SELECTOR, "#findings tr td:last-child")
    assert all(c.size["width"] <= overflow["width"] for c in cells)


def test_the_traffic_list_empties_when_another_client_resets(page: Chrome, server: ServerThread) -> None:
    for n in range(3):
        assert bet(server.url, f"before-{n}") == 0
    wait(page).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#traffic-rows tr[data-seq]")) == 3)
    assert call(server.url, "POST", "/_sim/reset")[0] == 200  # another client: not this page
    wait(page).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#traffic-rows tr[data-seq]"))
    assert bet(server.url, "after-1") == 0  # and the list goes on with what comes next
    wait(page).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#traffic-rows tr[data-seq]")) == 1)
    shot(page, "traffic-after-reset")
