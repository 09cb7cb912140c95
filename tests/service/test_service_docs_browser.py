"""``/docs`` and ``/redoc`` in headless Chromium with every host but the server unreachable.

Skips when Chromium is absent, except under ``CI=true`` where it fails: CI installs the
Debian packages ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import LiveServer, sqlite_live_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OPERATIONS = 12

pytestmark = pytest.mark.server


def _require_chromium() -> str:
    driver = shutil.which("chromedriver")
    if Path(CHROMIUM).exists() and driver is not None:
        return driver
    message = "Chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the docs browser test is required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The docs do not depend on the database: a server on a SQLite file of its own.

    A real server, because the browser is a separate process: it cannot reach an in-process
    client, nor the test's rolled-back transaction. Nothing is written; the file goes with
    ``tmp_path``.
    """
    with sqlite_live_server(tmp_path) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver_path = _require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1600",
        # No network but the test server: every other host name fails to resolve, so a page
        # that needed a CDN would render without its scripts and the test would fail.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _requests(browser: webdriver.Chrome) -> dict[str, str | None]:
    """URL of every request the page made -> why the browser refused it (``None``: sent).

    Read from Chromium's network log: a request the page's Content-Security-Policy refused
    never leaves the browser, and says so with ``blockedReason``.
    """
    sent: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            sent[params["requestId"]] = params["request"]["url"]
        elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[params["requestId"]] = params["blockedReason"]
    return {url: blocked.get(request_id) for request_id, url in sent.items()}


def _assert_only_local(browser: webdriver.Chrome, server_url: str) -> dict[str, str | None]:
    requests = _requests(browser)
    leaving = {
        url: why
        for url, why in requests.items()
        if url.split(":", 1)[0] not in ("data", "blob") and not url.startswith(server_url)
    }
    assert all(why == "csp" for why in leaving.values()), leaving
    return requests


def test_swagger_ui_renders_every_operation_offline(
    live_server: LiveServer, browser: webdriver.Chrome
) -> None:
    browser.get(f"{live_server.url}/docs")
    WebDriverWait(browser, 30).until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= OPERATIONS
    )
    summaries = [
        element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    ]
    assert "/users/{user_id}/items" in summaries
    assert len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) == OPERATIONS
    requests = _assert_only_local(browser, live_server.url)
    assert requests[f"{live_server.url}/docs-assets/swagger-ui-bundle.js"] is None
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "service-docs.png"))


def test_redoc_renders_offline(live_server: LiveServer, browser: webdriver.Chrome) -> None:
    browser.get(f"{live_server.url}/redoc")
    WebDriverWait(browser, 30).until(
        lambda driver: "/users/{user_id}/items" in driver.find_element(By.TAG_NAME, "body").text
    )
    assert browser.find_elements(By.CSS_SELECTOR, "[data-section-id]")
    requests = _assert_only_local(browser, live_server.url)
    assert requests[f"{live_server.url}/docs-assets/redoc.standalone.js"] is None
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "service-redoc.png"))
