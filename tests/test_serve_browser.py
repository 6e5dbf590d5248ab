"""Unsubscribing from a real email in a real browser: headless Debian chromium.

The bundled example day is run (`digest run`), the unsubscribe link is taken from
a delivered .eml and pointed at the live service; chromium opens it, the reader
presses the button, and the database says they are unsubscribed. Chromium missing
is a failure, not a skip: `make browser` (part of `make test`) installs it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_serve import (
    SECRET,
    LiveServer,
    email_html,
    example_config,
    run_cli,
    unsubscribe_link,
)

from digest.serve import create_app
from digest.settings import load_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags of tests/test_email_browser.py: without the background-networking ones
# chromium stalls on a machine with no network.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip
#: Where the example's emails point; the test re-points them at its live server.
PLACEHOLDER = "http://127.0.0.1:9"
#: A phone's width: the page must fit it.
WIDTH = 375


def start_browser() -> webdriver.Chrome:
    """Headless chromium; a missing browser is an error saying how to install it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: run `make browser` to install")
    options = Options()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver = start_browser()
    yield driver
    driver.quit()


def body_unsubscribe_link(eml: Path) -> str:
    """The href of the "Unsubscribe" link a reader sees in the email's HTML."""
    html = email_html(eml)
    found = re.findall(r'<a[^>]*href="([^"]+)"[^>]*>\s*Unsubscribe\s*</a>', html)
    assert len(found) == 1, found
    return found[0].replace("&amp;", "&")


def unsubscribed_at(db: Path, handle: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT unsubscribed_at FROM readers WHERE handle = ?", (handle,)
        ).fetchone()
    conn.close()
    return row[0]


def test_a_reader_unsubscribes_from_a_real_email_in_chromium(
    tmp_path: Path, browser: webdriver.Chrome
) -> None:
    config = example_config(tmp_path, PLACEHOLDER)
    day = run_cli(config, "run", "--date", "2026-03-11")
    assert day.returncode == 0, day.stderr
    eml = tmp_path / "out" / "outbox" / "2026-03-11" / "grace.eml"
    link = body_unsubscribe_link(eml)
    assert link == unsubscribe_link(eml)  # the footer link is the List-Unsubscribe one
    assert link.startswith(f"{PLACEHOLDER}/u/")
    db = tmp_path / "example.db"

    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    with LiveServer(create_app(settings)) as server:
        browser.set_window_size(WIDTH, 800)
        browser.set_window_size(2 * WIDTH - browser.execute_script("return innerWidth"), 800)
        browser.get(link.replace(PLACEHOLDER, server.base))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Unsubscribe"
        assert "Stop sending digests to grace?" in browser.find_element(By.TAG_NAME, "main").text
        assert browser.execute_script("return document.documentElement.lang") == "en"
        fits = "return document.documentElement.scrollWidth <= innerWidth"
        assert browser.execute_script(fits), "the page must fit a phone's width"
        assert unsubscribed_at(db, "grace") is None  # opening the page changes nothing

        button = browser.find_element(By.TAG_NAME, "button")
        assert button.text == "Unsubscribe" and button.is_displayed() and button.is_enabled()
        button.click()
        # The heading is read in one script call, so no element is held across the
        # navigation: a found element could leave the document before its text was read
        # (stale, or "Node ... does not belong to the document"). Errors while the new
        # page loads are retried until the wait's end.
        heading = "return document.querySelector('h1')?.textContent.trim()"
        WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
            lambda b: b.execute_script(heading) == "Unsubscribed"
        )
        assert "grace will get no more digests." in browser.find_element(By.TAG_NAME, "main").text
        assert browser.current_url == link.replace(PLACEHOLDER, server.base)

    assert unsubscribed_at(db, "grace") is not None
    assert unsubscribed_at(db, "ada") is None
